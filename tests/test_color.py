"""Colour preservation: YIQ, chroma swaps and histogram matching against NumPy float64."""

import dataclasses
import typing

import jax.numpy as jnp
import numpy as np
import pytest

import jaxnst
from jaxnst import color

MODES = typing.get_args(typing.get_type_hints(jaxnst.Config)["histogram_mode"])
# Rec. 601 YCbCr (JPEG's), an independent luma-chroma space with the same luma.
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def np_moments(x):
    x = np.asarray(x, np.float64).reshape(-1, 3)
    return x.mean(0), np.cov(x.T, bias=True)


def colourful(rng, shape=(20, 24, 3)):
    """Pixels with correlated channels and a colour cast, inside (0, 1)."""
    mix = rng.uniform(0.2, 1.0, (3, 3))
    x = rng.standard_normal((*shape[:-1], 3)) @ mix.T * 0.08 + rng.uniform(0.3, 0.7, 3)
    return np.clip(x, 0.01, 0.99).astype(np.float32)


def test_yiq_round_trip_and_luma(rng):
    x = rng.uniform(0, 1, (7, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-6)
    np.testing.assert_allclose(color.rgb_to_yiq(x)[..., 0], x @ np.array([0.299, 0.587, 0.114]), atol=1e-6)
    gray = color.luminance(x)
    np.testing.assert_allclose(color.rgb_to_yiq(gray)[..., 1:], 0, atol=1e-6)  # no chroma left


def test_keep_chroma_equals_the_ycbcr_swap(rng):
    image, content = colourful(rng), colourful(rng)
    got = color.keep_chroma(image, content)
    y = np.asarray(image, np.float64) @ YCBCR.T
    c = np.asarray(content, np.float64) @ YCBCR.T
    want = np.clip(np.concatenate([y[..., :1], c[..., 1:]], -1) @ np.linalg.inv(YCBCR).T, 0, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_match_luminance_takes_the_contents_mean_and_deviation(rng):
    style, content = colourful(rng), colourful(rng, (16, 30, 3))
    y = np.asarray(color.rgb_to_yiq(color.match_luminance(style, content)))
    yc = np.asarray(content, np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(y[..., 1:], 0, atol=1e-6)
    np.testing.assert_allclose([y[..., 0].mean(), y[..., 0].std()], [yc.mean(), yc.std()], atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.slow
def test_histogram_matching_gives_the_contents_mean_and_covariance(rng, mode):
    style, content = colourful(rng), colourful(rng, (16, 30, 3))
    out = color.match_histogram(style, content, mode)
    (m, c), (mc, cc) = np_moments(out), np_moments(content)
    np.testing.assert_allclose(m, mc, atol=1e-4)
    np.testing.assert_allclose(c, cc, atol=1e-4)
    # Known values: each mode's own form, and the identity between equal covariances.
    _, cs = np_moments(style)
    a = np.asarray(color.color_transform(jnp.asarray(cs, jnp.float32), jnp.asarray(cc, jnp.float32), mode))
    if mode == "cholesky":
        np.testing.assert_allclose(np.triu(a, 1), 0, atol=1e-6)
    if mode == "ot":
        np.testing.assert_allclose(a, a.T, atol=1e-4)
        assert np.all(np.linalg.eigvalsh((a + a.T) / 2) > 0)
    same = color.color_transform(jnp.asarray(cc, jnp.float32), jnp.asarray(cc, jnp.float32), mode)
    np.testing.assert_allclose(same, np.eye(3), atol=2e-3)


def test_the_ot_map_moves_pixels_least(rng):
    """Among the modes, the optimal-transport map has the smallest mean squared move of the pixels."""
    style, content = colourful(rng), colourful(rng, (16, 30, 3))
    moved = {m: float(jnp.mean(jnp.square(color.match_histogram(style, content, m) - style))) for m in MODES}
    assert moved["ot"] <= min(moved.values()) + 1e-7, moved


@pytest.mark.slow
def test_stylize_keeps_the_contents_colours(vgg19, rng):
    """post and luminance: the output's chroma is the content's; histogram changes what the network sees."""
    content, style = colourful(rng, (32, 32, 3)), colourful(rng, (32, 32, 3))
    # The Gram: W2's eigendecompositions turn the rounding of the style matched in two programs
    # into 2e-4 after 3 steps on some CPUs (the Gram: 3e-6), which would hide what this compares.
    base = jaxnst.Config(size=32, steps=3, min_size=None, style_layers=("relu1_1", "relu2_1"), style_statistic="gram")
    plain = jaxnst.stylize(content, [style], vgg19, base)
    for mode in ("post", "luminance"):
        out = jaxnst.stylize(content, [style], vgg19, dataclasses.replace(base, preserve_color=mode))
        iq = np.asarray(color.rgb_to_yiq(out))[..., 1:]
        inside = np.all((np.asarray(out) > 0.01) & (np.asarray(out) < 0.99), axis=-1)  # not clipped
        np.testing.assert_allclose(iq[inside], np.asarray(color.rgb_to_yiq(content))[..., 1:][inside], atol=1e-5)
    post = jaxnst.stylize(content, [style], vgg19, dataclasses.replace(base, preserve_color="post"))
    np.testing.assert_allclose(post, color.keep_chroma(plain, content), atol=1e-6)
    hist = jaxnst.stylize(content, [style], vgg19, dataclasses.replace(base, preserve_color="histogram"))
    matched = color.match_histogram(style, content, base.histogram_mode)
    np.testing.assert_allclose(hist, jaxnst.stylize(content, [matched], vgg19, base), atol=1e-5)  # 3e-6 seen


@pytest.mark.slow
def test_batch_items_keep_their_colours_as_single_runs(vgg19, rng):
    contents = [colourful(rng, (32, 32, 3)), colourful(rng, (32, 32, 3))]
    style = colourful(rng, (32, 32, 3))
    base = jaxnst.Config(size=32, steps=2, min_size=None, style_layers=("relu1_1", "relu2_1"))
    configs = [dataclasses.replace(base, preserve_color=m) for m in ("luminance", "histogram")]
    outs = jaxnst.stylize_batch(contents, [style], vgg19, configs, multiple=8)
    for c, cfg, out in zip(contents, configs, outs, strict=True):
        np.testing.assert_allclose(out, jaxnst.stylize(c, [style], vgg19, cfg), atol=1e-5)
