"""Video: a clip in one style that does not flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer
for videos", 2016).

The first frame is stylised as a still (``jaxnst.stylize``, coarse to fine). Each later frame starts from
the previous result warped by the optical flow between the two content frames (``optical_flow``,
``warp``), and its objective gains a temporal term: the mean squared difference to that warped result
wherever the flow is reliable (``reliable``: the forward and backward flows agree, and no motion
boundary). The term enters through ``stylize``'s ``objective``, as a researcher's own term would.
With the warm start a later frame needs fewer steps (``frame_steps``: half the first frame's by default).

The flow is OpenCV's DIS (the ``video`` extra); warping, the masks and the loss are JAX.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates
from jax.tree_util import Partial

from jaxnst import color
from jaxnst.config import Config, scale_schedule, validate
from jaxnst.errors import JaxnstError
from jaxnst.single import stylize
from jaxnst.vgg import Weights

TEMPORAL_WEIGHT = 1e3  # beside the content weight of 5, Ruder et al.'s ratio (their pixels too were 0..255)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise JaxnstError('jaxnst video needs the video extra (cv2 is missing): pip install "jaxnst[video]"') from None
    return cv2


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from frame ``a`` to frame ``b`` (both (H, W, 3) in [0, 1]): float32 (H, W, 2) holding (dx, dy),
    so that pixel (y, x) of ``a`` is at (y + dy, x + dx) in ``b``. OpenCV's DIS (medium preset) on the grey frames."""
    cv2 = _cv2()
    grey = [cv2.cvtColor(np.round(np.asarray(f) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in (a, b)]
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(*grey, None)


def _sources(flow: jax.Array) -> tuple[jax.Array, jax.Array]:
    h, w = flow.shape[:2]
    y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    return y + flow[..., 1], x + flow[..., 0]


def warp(image, flow) -> jax.Array:
    """``image`` (H, W, C) sampled at each pixel moved by ``flow`` (H, W, 2) (dx, dy): out(y, x) =
    image(y + dy, x + dx), bilinear, the edge pixels beyond the border. With the flow from frame i to
    frame i-1 it brings frame i-1's pixels to where they are in frame i."""
    y, x = _sources(jnp.asarray(flow))
    image = jnp.asarray(image)
    channels = [map_coordinates(image[..., c], [y, x], order=1, mode="nearest") for c in range(image.shape[-1])]
    return jnp.stack(channels, axis=-1)


def reliable(forward, backward) -> jax.Array:
    """Where the warp of frame i-1 into frame i can be trusted: float32 (H, W), 1 or 0. ``backward`` is the
    flow from frame i to i-1, ``forward`` from i-1 to i. A pixel is out where it is occluded (the forward flow
    where it came from does not bring it back: |f + b|^2 > 0.01 (|f|^2 + |b|^2) + 0.5, Sundaram et al.), on a
    motion boundary (|grad u|^2 + |grad v|^2 > 0.01 |b|^2 + 0.002), or came from outside the frame."""
    backward = jnp.asarray(backward)
    f = warp(forward, backward)
    sq = lambda v: jnp.sum(jnp.square(v), axis=-1)  # noqa: E731
    occluded = sq(f + backward) > 0.01 * (sq(f) + sq(backward)) + 0.5
    dy, dx = jnp.gradient(backward, axis=(0, 1))
    boundary = sq(dx) + sq(dy) > 0.01 * sq(backward) + 0.002
    y, x = _sources(backward)
    h, w = backward.shape[:2]
    outside = (y < 0) | (y > h - 1) | (x < 0) | (x > w - 1)
    return (~(occluded | boundary | outside)).astype(jnp.float32)


def temporal_loss(image: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over pixels and channels of ``mask`` * (image - target)^2 in 8-bit levels (images in [0, 1] times
    255: a value of 9 is a difference of 3 levels everywhere): images (..., H, W, C), mask (..., H, W)."""
    return jnp.mean(mask[..., None] * jnp.square(255.0 * (image - target)))


def with_temporal(loss_fn: Callable, target: jax.Array, mask: jax.Array, weight: jax.Array, image: jax.Array):
    """``loss_fn``'s loss plus ``weight`` * ``temporal_loss``; its terms plus ``temporal``. A ``Partial`` of it
    over the arrays is a ``stylize`` ``objective`` that compiles once per shape."""
    loss, terms = loss_fn(image)
    t = temporal_loss(image, target, mask)
    return loss + weight * t, {**terms, "temporal": t}


def first_frame_steps(config: Config) -> int:
    """The steps of the first frame: the whole coarse-to-fine schedule."""
    return sum(n for _, n in scale_schedule(config))


def stylize_clip(
    frames: Iterable[np.ndarray],
    styles: Sequence,
    weights: Weights,
    config: Config = Config(),
    *,
    temporal_weight: float = TEMPORAL_WEIGHT,
    warm_start: bool = True,
    frame_steps: int | None = None,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
    callback: Callable | None = None,
    every: int = 10,
    **controls,
) -> Iterator[np.ndarray]:
    """Yields each frame of ``frames`` ((H, W, 3) in [0, 1], one shape) in the style of ``styles``, as
    float32 (H, W, 3) rounded to 8 bits (what a PNG keeps: a run resumed from the written frames goes on
    exactly). The first frame runs ``config`` as ``stylize`` does; each later one, with ``warm_start``,
    starts from the previous result warped by the flow, runs ``frame_steps`` steps (default: half the
    first frame's) at full size, and adds ``temporal_weight`` * ``temporal_loss`` to its objective.
    Without ``warm_start`` every frame is a still of its own (frame by frame, the baseline).

    ``previous`` = (the content frame before ``frames``, its result) goes on from there (``--resume``).
    ``callback(k, progress)`` gets ``stylize``'s ``Progress`` of frame ``k`` (counted in ``frames``);
    ``controls`` go to ``stylize`` (``coarse_styles``, ``content_masks``...).
    """
    cfg = validate(config)
    steps = first_frame_steps(cfg) // 2 if frame_steps is None else frame_steps
    if steps < 1:
        raise JaxnstError(f"frame_steps {steps} must be at least 1")
    later = dataclasses.replace(cfg, steps=steps, min_size=None, initial_steps=None)
    weight = jnp.float32(temporal_weight)
    for k, frame in enumerate(frames):
        report = None if callback is None else functools.partial(callback, k)
        if previous is None or not warm_start:
            out = stylize(frame, styles, weights, cfg, callback=report, every=every, **controls)
        else:
            before, result = previous
            if np.shape(before) != np.shape(frame):
                raise JaxnstError(f"frame {k} is {np.shape(frame)[:2]}, the one before it {np.shape(before)[:2]}")
            back, forward = optical_flow(frame, before), optical_flow(before, frame)
            warped = warp(result, back)
            target = color.luminance(warped) if cfg.preserve_color == "luminance" else warped
            mask = reliable(forward, back)
            objective = lambda loss_fn, hw: Partial(with_temporal, loss_fn, target[None], mask[None], weight)  # noqa: B023, E731
            out = stylize(frame, styles, weights, later, callback=report, every=every, init_image=warped,
                          objective=objective, **controls)  # fmt: skip
        out = np.round(np.asarray(out, np.float32) * 255) / np.float32(255)
        yield out
        previous = (frame, out)
