"""jaxnst.video: the flow, the warp, the reliability mask, the temporal term and the clip loop."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnst
from jaxnst import video

pytest.importorskip("cv2")  # the video extra: pip install -e ".[dev]"

FAST = jaxnst.Config(steps=6, min_size=None, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))


def test_warp_is_a_shift_for_a_constant_flow(rng):
    image = rng.uniform(size=(12, 16, 3)).astype(np.float32)
    flow = np.broadcast_to(np.float32([3, -2]), (12, 16, 2))  # out(y, x) = image(y - 2, x + 3)
    want = image[np.clip(np.arange(12) - 2, 0, 11)][:, np.clip(np.arange(16) + 3, 0, 15)]  # edges repeat
    np.testing.assert_allclose(video.warp(image, flow), want, atol=1e-6)
    half = np.broadcast_to(np.float32([0.5, 0]), (12, 16, 2))  # bilinear: the mean of two neighbours
    np.testing.assert_allclose(video.warp(image, half)[:, :-1], (image[:, :-1] + image[:, 1:]) / 2, atol=1e-6)


def test_optical_flow_finds_a_pan(images_dir):
    photo = jaxnst.load_image(images_dir / "tubingen.jpg", 128)
    a, b = photo[10:74, 0:96], photo[10:74, 5:101]  # the camera pans right: b's content is a's moved 5 px left
    flow = video.optical_flow(b, a)  # pixel (y, x) of b is at (y, x + 5) in a
    inner = flow[8:-8, 8:-16]
    assert abs(np.median(inner[..., 0]) - 5) < 0.1 and abs(np.median(inner[..., 1])) < 0.1
    np.testing.assert_allclose(video.warp(a, flow)[8:-8, 8:-16], b[8:-8, 8:-16], atol=0.06)


def test_reliable_masks_out_what_a_moving_object_uncovers():
    """A square moves 4 px right over a still background: where it was is uncovered (no source in the
    frame before), its edges are motion boundaries; the rest is reliable. True flows, so exact."""
    h, w = 24, 32
    before, now = np.zeros((h, w), bool), np.zeros((h, w), bool)
    before[8:16, 8:16], now[8:16, 12:20] = True, True
    forward = np.zeros((h, w, 2), np.float32)  # frame i-1 -> i
    forward[before] = [4, 0]
    backward = np.zeros((h, w, 2), np.float32)  # frame i -> i-1
    backward[now] = [-4, 0]
    mask = np.asarray(video.reliable(forward, backward))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (mask[9:15, 9:11] == 0).all()  # uncovered: the background there was under the square
    assert (mask[9:15, 13:19] == 1).all()  # the square itself, well inside
    assert (mask[0:5] == 1).all() and (mask[:, 24:] == 1).all()  # still background
    assert (mask[8:16, 19:21] == 0).any()  # its leading edge is a motion boundary
    # A pan: what enters at the border came from outside the frame.
    pan = np.broadcast_to(np.float32([3, 0]), (h, w, 2))
    edge = np.asarray(video.reliable(-pan, pan))
    assert (edge[:, -3:] == 0).all() and (edge[:, :-4] == 1).all()


def test_the_temporal_term_and_its_gradient(rng):
    image, target = (jnp.asarray(rng.uniform(size=(1, 6, 8, 3)), jnp.float32) for _ in range(2))
    mask = jnp.asarray(rng.uniform(size=(1, 6, 8)) > 0.5, jnp.float32)
    t = video.temporal_loss(image, target, mask)
    want = np.mean(np.asarray(mask)[..., None] * (255 * np.asarray(image - target)) ** 2)  # in 8-bit levels
    np.testing.assert_allclose(t, want, rtol=1e-5)

    def base(x):
        return jnp.sum(x**3), {"style": jnp.sum(x)}

    loss = jax.tree_util.Partial(video.with_temporal, jax.tree_util.Partial(base), target, mask, jnp.float32(7.0))
    value, terms = loss(image)
    np.testing.assert_allclose(value, jnp.sum(image**3) + 7 * t, rtol=1e-6)
    assert set(terms) == {"style", "temporal"}
    g = jax.grad(lambda x: loss(x)[0])(image)
    want = 3 * image**2 + 7 * 2 * 255**2 * mask[..., None] * (image - target) / image.size
    np.testing.assert_allclose(g, want, rtol=1e-5)
    d = jnp.zeros_like(image).at[0, 2, 3, 1].set(1e-2)  # a central difference along one pixel
    fd = (loss(image + d)[0] - loss(image - d)[0]) / 2e-2
    np.testing.assert_allclose(fd, g[0, 2, 3, 1], rtol=2e-2)


def pan(images_dir, n, step=3):
    photo = jaxnst.load_image(images_dir / "tubingen.jpg", 96)
    return [photo[8:40, step * k : step * k + 48] for k in range(n)]


@pytest.mark.slow
def test_a_clip_resumed_from_its_written_frames_is_the_uninterrupted_one(images_dir, vgg19):
    frames = pan(images_dir, 3)
    style = jaxnst.load_image(images_dir / "starry_night.jpg", 48)
    seen = []
    whole = list(video.stylize_clip(frames, [style], vgg19, FAST, callback=lambda k, p: seen.append((k, p.steps))))
    assert [o.shape for o in whole] == [(32, 48, 3)] * 3
    assert seen[-1] == (2, 3)  # later frames: half the first frame's 6 steps
    assert (np.round(whole[1] * 255) == whole[1] * 255).all()  # as a PNG keeps it
    rest = list(video.stylize_clip(frames[2:], [style], vgg19, FAST, previous=(frames[1], whole[1])))
    np.testing.assert_array_equal(rest[0], whole[2])
    alone = list(video.stylize_clip(frames[:2], [style], vgg19, FAST, warm_start=False))
    assert not np.array_equal(alone[1], whole[1])  # frame by frame is another image


@pytest.mark.slow
def test_stylize_objective_adds_a_term(images_dir, vgg19):
    """The hook a researcher (and jaxnst.video) adds a term through: it is optimised and reported."""
    content = jaxnst.load_image(images_dir / "tubingen.jpg", 32)
    style = jaxnst.load_image(images_dir / "starry_night.jpg", 32)
    gray = jnp.full((1, *content.shape), 0.5, jnp.float32)
    ones = jnp.ones((1, *content.shape[:2]), jnp.float32)
    terms = []
    hook = lambda loss_fn, hw: jax.tree_util.Partial(video.with_temporal, loss_fn, gray, ones, jnp.float32(w))  # noqa: E731
    out = {}
    for w in (0.0, 2e4):
        cfg = dataclasses.replace(FAST, lr=0.1, ema=0.0)  # Adam moves a pixel about lr a step: 6 reach the gray
        out[w] = jaxnst.stylize(
            content, [style], vgg19, cfg, objective=hook, callback=lambda p: terms.append(p.terms())
        )
    assert "temporal" in terms[-1]
    assert np.abs(out[2e4] - 0.5).mean() < 0.5 * np.abs(out[0.0] - 0.5).mean()  # pulled towards the gray target
