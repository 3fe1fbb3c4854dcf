"""Losses of neural style transfer as pure functions of arrays (NHWC).

Reference: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016. Each docstring states where jaxnst's
normalisation differs from the paper.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnst import sqrtm


def _accum_dtype(x: jax.Array):
    # bf16 features are summed in float32; float64 (x64 tests) stays float64.
    return jnp.promote_types(x.dtype, jnp.float32)


def _area(features: jax.Array, where: jax.Array | None):
    """The positions' weights as (N, H, W, 1) (or None) and their sum per image, (N, 1, 1)."""
    if where is None:  # a Python int, so that unmasked statistics divide exactly as they always did
        return None, features.shape[1] * features.shape[2]
    m = where.astype(_accum_dtype(features)).reshape(*where.shape[:3], 1)
    # An empty region (a small mask at a deep layer) gets zero statistics, not 0/0.
    return m, jnp.maximum(jnp.sum(m, axis=(1, 2)), jnp.finfo(m.dtype).tiny)[..., None]


def _weighted_mean(x: jax.Array, m, area) -> jax.Array:
    """Mean over positions (N, H, W, C) -> (N, C), weighted by ``m`` (``_area``)."""
    return jnp.mean(x, axis=(1, 2)) if m is None else jnp.sum(x * m, axis=(1, 2)) / area[..., 0]


def gram(features: jax.Array, *, norm: str = "chw", precision=None, where: jax.Array | None = None) -> jax.Array:
    """Gram matrices of NHWC feature maps: (N, H, W, C) -> (N, C, C).

    .. math:: G_{cd} = \\frac{1}{Z} \\sum_{h,w} F_{hwc} F_{hwd}

    with ``Z = C*H*W`` for ``norm='chw'`` (Johnson's neural-style, the PyTorch
    tutorial) or ``Z = H*W`` for ``norm='hw'`` (Gatys' ``1/M_l`` applied inside
    the Gram, as in pystiche). Gatys' paper itself puts ``1/(4 N_l^2 M_l^2)`` in
    the loss; that equals ``norm='hw'`` with the mean over ``C*C`` entries and a
    factor ``1/4``. ``precision`` is the ``lax.Precision`` of the products (``None``:
    JAX's default, which on GPUs is TensorFloat-32 for float32 inputs).

    ``where`` (N, H, W), weights >= 0 of the positions (a region's mask at this layer's
    resolution), makes it the Gram of that region: ``sum_hw m F F^T`` with ``H*W`` replaced by
    ``sum_hw m``, the region's area. This and the other statistics' ``where`` are Gatys et al.
    2017's guided statistics, normalised by area so that the region's size does not change the loss.

    >>> gram(jnp.ones((1, 2, 2, 3)), norm="hw")[0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    c = features.shape[-1]
    m, area = _area(features, where)
    z = {"chw": c * area, "hw": area}[norm]
    acc = _accum_dtype(features)
    # Asking for float32 output from float32 inputs made XLA:CPU pick a slower dot.
    g = jnp.einsum(
        "nhwc,nhwd->ncd",
        features if m is None else features * m.astype(features.dtype),
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


def mean_std(features: jax.Array, *, eps: float = 1e-5, where: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and standard deviation over positions: (N, H, W, C) -> ((N, C), (N, C)).

    .. math:: \\mu_c = \\operatorname{mean}_{hw} F_{hwc}, \\qquad
              \\sigma_c = \\sqrt{\\operatorname{mean}_{hw} (F_{hwc} - \\mu_c)^2 + \\epsilon}

    The style statistic of Huang & Belongie's AdaIN ("Arbitrary Style Transfer
    in Real-time with Adaptive Instance Normalization", ICCV 2017) and of Li et
    al.'s "Demystifying Neural Style Transfer" (BN matching): it keeps each
    channel's first two moments and none of the correlations between channels
    that a Gram holds. ``eps`` keeps the gradient finite where a channel is constant.
    ``where`` weights the positions (``gram``).

    >>> mean, std = mean_std(jnp.ones((1, 2, 2, 3)))
    >>> mean[0], std[0]
    (Array([1., 1., 1.], dtype=float32), Array([0.00316228, 0.00316228, 0.00316228], dtype=float32))
    """
    x = features.astype(_accum_dtype(features))
    m, area = _area(x, where)
    mean = _weighted_mean(x, m, area)
    var = _weighted_mean(jnp.square(x - mean[:, None, None, :]), m, area)
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


class GaussianMoments(NamedTuple):
    """What ``gaussian_moments`` returns: per image, (N, C), (N, C, C) and (N, C, C)."""

    mean: jax.Array
    cov: jax.Array  # centred: mean over positions of (F - mu)(F - mu)^T
    mean_outer: jax.Array  # mu mu^T


def gaussian_moments(features: jax.Array, *, precision=None, where: jax.Array | None = None) -> GaussianMoments:
    """The mean and covariance of feature vectors over positions, and the mean's outer product:
    (N, H, W, C) -> ``GaussianMoments``.

    .. math:: \\mu_c = \\operatorname{mean}_{hw} F_{hwc}, \\qquad
              \\Sigma_{cd} = \\operatorname{mean}_{hw} (F_{hwc} - \\mu_c)(F_{hwd} - \\mu_d)

    Several styles blend as the weighted mean of each leaf, and ``w2_target`` adds back
    ``mean(mu mu^T) - mean(mu) mean(mu)^T``: the covariance of the pooled positions, i.e. a blend
    of the raw first and second moments, as crowsonkb/style-transfer-pytorch blends them.
    The covariance is centred before the product: from the raw second moment, ReLU features
    whose means dwarf their spread lose their covariance to float32 cancellation.
    ``where`` weights the positions (``gram``).
    """
    x = features.astype(_accum_dtype(features))
    mean = _weighted_mean(x, *_area(x, where))
    cov = gram(x - mean[:, None, None, :], norm="hw", precision=precision, where=where)
    return GaussianMoments(mean, cov, mean[:, :, None] * mean[:, None, :])


W2_EPS = 1e-4  # added to every covariance's diagonal (crowsonkb's value): keeps them positive definite


class W2Target(NamedTuple):
    """A style target of the W2 loss: the Gaussian's mean (N, C), covariance (+ eps I) and its square root (N, C, C)."""

    mean: jax.Array
    cov: jax.Array
    cov_sqrt: jax.Array


def _with_eps(cov: jax.Array) -> jax.Array:
    return cov + W2_EPS * jnp.eye(cov.shape[-1], dtype=cov.dtype)


def w2_target(moments: GaussianMoments, *, method: str = sqrtm.DEFAULT_METHOD) -> W2Target:
    """The (blended) ``gaussian_moments`` of the style, prepared once for ``w2_distance``."""
    mean, cov, outer = moments
    # Zero for a single style (outer is mean mean^T exactly); the spread of the styles' means for several.
    between = outer - mean[..., :, None] * mean[..., None, :]
    cov = _with_eps(cov + between)
    return W2Target(mean, cov, sqrtm.sqrtm(cov, method))


def w2_distance(moments: GaussianMoments, target: W2Target, *, method: str = sqrtm.DEFAULT_METHOD) -> jax.Array:
    """Squared Wasserstein-2 distance between the Gaussians fitted to the features and to the
    style, per channel: (N,).

    .. math:: \\frac{1}{C}\\Big(\\lVert \\mu - \\mu_s \\rVert^2 + \\operatorname{tr} \\Sigma
              + \\operatorname{tr} \\Sigma_s
              - 2 \\operatorname{tr} \\big(\\Sigma_s^{1/2} \\Sigma \\Sigma_s^{1/2}\\big)^{1/2}\\Big)

    (Dowson & Landau 1982; as a style loss: Kolkin et al. 2019, crowsonkb/style-transfer-pytorch,
    whose means over channels this keeps; both covariances get ``W2_EPS * I``). ``moments`` are
    ``gaussian_moments`` of the image's features, ``target`` a ``w2_target``; it is zero for equal
    statistics and symmetric in the two Gaussians. The square root's gradient is
    ``jaxnst.sqrtm.trace_sqrtm``'s.
    """
    cov = _with_eps(moments.cov)
    hi = functools.partial(jnp.matmul, precision=sqrtm.HIGHEST)
    cross = sqrtm.trace_sqrtm(sqrtm.symmetric(hi(hi(target.cov_sqrt, cov), target.cov_sqrt)), method)
    tr = lambda a: jnp.trace(a, axis1=-2, axis2=-1)  # noqa: E731
    c = cov.shape[-1]
    return jnp.mean(jnp.square(moments.mean - target.mean), axis=-1) + (tr(cov) + tr(target.cov) - 2 * cross) / c


class StyleStatistic(NamedTuple):
    """A style statistic: ``statistic(features, precision=, where=)`` of feature maps (N, H, W, C) returns
    a pytree of (N, ...) arrays; targets blend several style images as the weighted mean of each
    leaf; ``prepare`` turns the blended value into the target once; ``distance(statistic,
    target)`` is (N,)."""

    statistic: Callable
    distance: Callable = mean_squared_distance
    prepare: Callable = lambda blended: blended  # noqa: E731


STYLE_STATISTICS = {
    "gram": StyleStatistic(gram),  # also takes ``norm``
    "mean_std": StyleStatistic(lambda features, precision=None, where=None: mean_std(features, where=where)),
    "w2": StyleStatistic(gaussian_moments, w2_distance, w2_target),
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
