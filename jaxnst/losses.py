"""Losses of neural style transfer as pure functions of arrays (NHWC).

Reference: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016. Each docstring states where jaxnst's
normalisation differs from the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp


def _accum_dtype(x: jax.Array):
    # bf16 features are summed in float32; float64 (x64 tests) stays float64.
    return jnp.promote_types(x.dtype, jnp.float32)


def gram(features: jax.Array, *, norm: str = "chw", precision=None) -> jax.Array:
    """Gram matrices of NHWC feature maps: (N, H, W, C) -> (N, C, C).

    .. math:: G_{cd} = \\frac{1}{Z} \\sum_{h,w} F_{hwc} F_{hwd}

    with ``Z = C*H*W`` for ``norm='chw'`` (Johnson's neural-style, the PyTorch
    tutorial) or ``Z = H*W`` for ``norm='hw'`` (Gatys' ``1/M_l`` applied inside
    the Gram, as in pystiche). Gatys' paper itself puts ``1/(4 N_l^2 M_l^2)`` in
    the loss; that equals ``norm='hw'`` with the mean over ``C*C`` entries and a
    factor ``1/4``. ``precision`` is the ``lax.Precision`` of the products (``None``:
    JAX's default, which on GPUs is TensorFloat-32 for float32 inputs).

    >>> gram(jnp.ones((1, 2, 2, 3)), norm="hw")[0]
    Array([[1., 1., 1.], [1., 1., 1.], [1., 1., 1.]], dtype=float32)
    """
    _, h, w, c = features.shape
    z = {"chw": c * h * w, "hw": h * w}[norm]
    acc = _accum_dtype(features)
    # Asking for float32 output from float32 inputs made XLA:CPU pick a slower dot.
    g = jnp.einsum(
        "nhwc,nhwd->ncd",
        features,
        features,
        preferred_element_type=None if acc == features.dtype else acc,
        precision=precision,
    )
    return g / z


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error of feature maps, per image: (N, H, W, C) x2 -> (N,).

    .. math:: L_c = \\frac{1}{HWC} \\sum (F - P)^2

    Gatys uses ``1/2`` times the sum; the mean makes the weight independent of
    the layer's size.
    """
    diff = features.astype(_accum_dtype(features)) - target
    return jnp.mean(jnp.square(diff), axis=(1, 2, 3))


def mean_std(features: jax.Array, *, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and standard deviation over positions: (N, H, W, C) -> ((N, C), (N, C)).

    .. math:: \\mu_c = \\operatorname{mean}_{hw} F_{hwc}, \\qquad
              \\sigma_c = \\sqrt{\\operatorname{mean}_{hw} (F_{hwc} - \\mu_c)^2 + \\epsilon}

    The style statistic of Huang & Belongie's AdaIN ("Arbitrary Style Transfer
    in Real-time with Adaptive Instance Normalization", ICCV 2017) and of Li et
    al.'s "Demystifying Neural Style Transfer" (BN matching): it keeps each
    channel's first two moments and none of the correlations between channels
    that a Gram holds. ``eps`` keeps the gradient finite where a channel is constant.

    >>> mean, std = mean_std(jnp.ones((1, 2, 2, 3)))
    >>> mean[0], std[0]
    (Array([1., 1., 1.], dtype=float32), Array([0.00316228, 0.00316228, 0.00316228], dtype=float32))
    """
    x = features.astype(_accum_dtype(features))
    mean = jnp.mean(x, axis=(1, 2))
    var = jnp.mean(jnp.square(x - mean[:, None, None, :]), axis=(1, 2))
    return mean, jnp.sqrt(var + eps)


def mean_squared_distance(statistic, target) -> jax.Array:
    """Distance of two style statistics (pytrees of (N, ...) arrays): per image, the sum over
    leaves of each leaf's mean squared difference, (N,). ``target`` leaves broadcast.

    For a Gram it is ``mean_cd (G_cd - A_cd)^2``; for ``mean_std``,
    ``mean_c (mu_c - mu'_c)^2 + mean_c (sigma_c - sigma'_c)^2``.
    """

    def leaf(s, t):
        d = jnp.square(s - t)
        return jnp.mean(d, axis=tuple(range(1, d.ndim)))

    return sum(jax.tree.leaves(jax.tree.map(leaf, statistic, target)))


# A style statistic is a function of feature maps (N, H, W, C) returning a pytree of
# (N, ...) arrays, and the distance between two of its values, (N,). Targets blend
# several style images in statistic space (a weighted mean of each leaf).
# ``gram`` takes ``norm`` and ``precision`` as keywords; the others take ``features`` alone.
STYLE_STATISTICS = {
    "gram": (gram, mean_squared_distance),
    "mean_std": (mean_std, mean_squared_distance),
}


def style_loss(
    statistics: Mapping[str, Any],
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, jax.Array] | None = None,
    *,
    distance: Callable = mean_squared_distance,
) -> jax.Array:
    """Weighted sum over layers of the distance of style statistics, per image.

    .. math:: L_s = \\sum_l w_l \\, d(S^l, T^l)

    ``statistics[l]`` is a statistic of layer ``l`` (a Gram (N, C, C), or a
    ``mean_std`` pair); ``targets[l]`` broadcasts against it. With the Gram and
    the default distance, ``d = (1/C_l^2) sum_cd (G_cd - A_cd)^2``. Layer
    weights (scalars or arrays) default to 1 each (jcjohnson/neural-style;
    Gatys uses ``1/5`` each, the same up to ``--style-weight``). Returns (N,).
    """
    total = 0.0
    for name, s in statistics.items():
        w = 1.0 if layer_weights is None else layer_weights[name]
        total = total + w * distance(s, targets[name])
    return total


def tv_loss(images: jax.Array, *, kind: str = "l2") -> jax.Array:
    """Total variation of NHWC images, per image: (N, H, W, C) -> (N,).

    .. math:: L_{tv} = \\operatorname{mean}_{hwc} \\rho(x_{h+1,w,c} - x_{hwc})
                     + \\operatorname{mean}_{hwc} \\rho(x_{h,w+1,c} - x_{hwc})

    with ``rho(d) = d^2`` for ``kind='l2'`` (Mahendran & Vedaldi with beta=2) and
    ``|d|`` for ``kind='l1'`` (anisotropic TV). Each mean runs over the
    differences that exist, so the value does not grow with the image size.
    """
    rho = {"l2": jnp.square, "l1": jnp.abs}[kind]
    x = images.astype(_accum_dtype(images))
    dh = rho(x[:, 1:, :, :] - x[:, :-1, :, :])
    dw = rho(x[:, :, 1:, :] - x[:, :, :-1, :])
    return jnp.mean(dh, axis=(1, 2, 3)) + jnp.mean(dw, axis=(1, 2, 3))
