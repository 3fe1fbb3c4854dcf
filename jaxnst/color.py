"""Keeping the content's colours (Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in
Neural Artistic Style Transfer", 2016, and Gatys et al., "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017). Pure functions of RGB arrays (..., 3) in [0, 1].

``Config.preserve_color`` picks one of:

* ``luminance``: the transfer runs on luminance only (content and styles as gray images, each
  style's luminance first given the content's mean and deviation); the result's luminance then
  takes the content's chroma.
* ``histogram``: each style's pixels are mapped linearly to the content's RGB mean and
  covariance before the transfer (``Config.histogram_mode``: ``color_transform``).
* ``post``: an ordinary transfer whose luminance takes the content's chroma afterwards.

Luminance and chroma are YIQ's (NTSC; Gatys et al. use it). For swapping chroma the choice among
linear luma-chroma spaces with this luma does not matter: YCbCr's chroma rows, like I and Q, are
the RGB weights that sum to zero, the same plane, so ``keep_chroma`` gives the same pixels in either.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import sqrtm
from jaxnst.config import Config

_YIQ = np.array([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])
RGB_TO_YIQ = _YIQ.astype(np.float32)
YIQ_TO_RGB = np.linalg.inv(_YIQ).astype(np.float32)
COV_EPS = 1e-7  # added to the pixels' covariances (a one-colour image has a singular one); small, as it leaves
# the output's covariance off by COV_EPS (I - A A^T)


def rgb_to_yiq(rgb: jax.Array) -> jax.Array:
    """(..., 3) RGB -> (..., 3) YIQ; Y is luminance, Rec. 601 weights."""
    return jnp.einsum("...c,dc->...d", rgb, RGB_TO_YIQ, precision=sqrtm.HIGHEST)


def yiq_to_rgb(yiq: jax.Array) -> jax.Array:
    """The inverse of ``rgb_to_yiq``."""
    return jnp.einsum("...c,dc->...d", yiq, YIQ_TO_RGB, precision=sqrtm.HIGHEST)


def luminance(rgb: jax.Array) -> jax.Array:
    """The gray image of ``rgb``'s luminance, still (..., 3): the network takes RGB."""
    y = rgb_to_yiq(rgb)[..., :1]
    return jnp.broadcast_to(y, rgb.shape)


def keep_chroma(image: jax.Array, content: jax.Array) -> jax.Array:
    """``image``'s luminance with ``content``'s chroma (same shapes), clipped to [0, 1]."""
    y = rgb_to_yiq(image)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y, iq], axis=-1)), 0.0, 1.0)


def match_luminance(style: jax.Array, content: jax.Array) -> jax.Array:
    """The gray ``luminance`` of ``style`` with the mean and standard deviation of ``content``'s."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    y = (ys - ys.mean()) / jnp.sqrt(ys.var() + COV_EPS) * jnp.sqrt(yc.var() + COV_EPS) + yc.mean()
    return jnp.broadcast_to(y[..., None], style.shape)


def _moments(rgb: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = rgb.reshape(-1, 3)
    mean = x.mean(axis=0)
    d = x - mean
    cov = jnp.einsum("nc,nd->cd", d, d, precision=sqrtm.HIGHEST) / x.shape[0]
    return mean, cov + COV_EPS * jnp.eye(3, dtype=cov.dtype)


def _eig(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    w, v = sqrtm.eigh(cov)
    return jnp.maximum(w, COV_EPS), v


def color_transform(style_cov: jax.Array, content_cov: jax.Array, mode: str = Config.histogram_mode) -> jax.Array:
    """A 3x3 ``A`` with ``A style_cov A^T = content_cov`` (both symmetric positive definite):

    * ``pca``: ``V_c D_c^1/2 D_s^-1/2 V_s^T``, the principal axes of the style's colours turned
      onto the content's, largest onto largest (each pair's signs chosen to agree);
    * ``cholesky``: ``L_c L_s^-1`` of the Cholesky factors (Gatys et al. 2017's first variant);
    * ``sym``: ``C_c^1/2 C_s^-1/2``, symmetric square roots (Hertzmann's image analogies);
    * ``ot``: ``C_s^-1/2 (C_s^1/2 C_c C_s^1/2)^1/2 C_s^-1/2``, the map that moves the pixels least
      (the Wasserstein-2 optimal one between the two Gaussians).
    """
    if mode == "pca":
        ws, vs = _eig(style_cov)
        wc, vc = _eig(content_cov)
        vc = vc * jnp.where(jnp.sum(vc * vs, axis=0) < 0, -1.0, 1.0)  # the sign of each axis is arbitrary
        return (vc * jnp.sqrt(wc / ws)) @ vs.T
    if mode == "cholesky":
        lc, ls = jnp.linalg.cholesky(content_cov), jnp.linalg.cholesky(style_cov)
        return jax.scipy.linalg.solve_triangular(ls, lc.T, lower=True, trans="T").T  # lc @ inv(ls)
    if mode == "sym":
        return sqrtm.sqrtm(content_cov) @ sqrtm.sqrt_and_inverse(style_cov)[1]
    if mode == "ot":
        root, inv_root = sqrtm.sqrt_and_inverse(style_cov)
        return inv_root @ sqrtm.sqrtm(sqrtm.symmetric(root @ content_cov @ root)) @ inv_root
    raise ValueError(f"unknown histogram mode {mode!r}: use pca, cholesky, sym or ot")


def match_histogram(style: jax.Array, content: jax.Array, mode: str = Config.histogram_mode) -> jax.Array:
    """``style`` (..., 3) mapped linearly to the RGB mean and covariance of ``content`` (``color_transform``'s
    ``mode``). Not clipped: clipping would move the moments again, and the network takes any values."""
    (ms, cs), (mc, cc) = _moments(style), _moments(content)
    a = color_transform(cs, cc, mode)
    return jnp.einsum("...c,dc->...d", style - ms, a, precision=sqrtm.HIGHEST) + mc


@functools.partial(jax.jit, static_argnames=("mode", "histogram_mode"))
def prepare(content: jax.Array, styles: list[jax.Array], mode: str, histogram_mode: str = Config.histogram_mode):
    """``(content, styles)`` as the transfer sees them under ``preserve_color=mode``."""
    if mode == "luminance":
        return luminance(content), [match_luminance(s, content) for s in styles]
    if mode == "histogram":
        return content, [match_histogram(s, content, histogram_mode) for s in styles]
    return content, list(styles)


@functools.partial(jax.jit, static_argnames=("mode",))
def finish(image: jax.Array, content: jax.Array, mode: str) -> jax.Array:
    """The output under ``preserve_color=mode``: for ``luminance`` and ``post`` ``image``'s luminance
    with ``content``'s chroma (``content`` resized to ``image`` first); else ``image``."""
    if mode not in ("luminance", "post"):
        return image
    if content.shape != image.shape:
        content = jax.image.resize(content, image.shape, "linear", antialias=True)
    return keep_chroma(image, content)
