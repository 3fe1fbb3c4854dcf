"""The objective of style transfer.

``make_targets`` computes what the image is pulled towards, ``objective`` is a
pure function of the image, and ``objective_fn`` binds it into the ``loss_fn``
that ``jaxnst.engine.run`` optimises.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from jaxnst import losses
from jaxnst.config import Config, style_layer_weights
from jaxnst.errors import JaxnstError
from jaxnst.ops import ops_for_run
from jaxnst.vgg import Network, Weights, layer_names, mask_at


class Targets(NamedTuple):
    """What the image is pulled towards: content features and (blended) style statistics.

    With ``regions`` (``make_targets``' ``content_masks``), region ``k`` of the image matches style
    ``k``: each style leaf has a leading region axis, and ``regions[tap]`` holds the regions' masks
    at that tap's resolution, (K, 1, h, w).
    """

    content: dict[str, jax.Array]  # tap -> (1, H, W, C)
    style: dict[str, Any]  # tap -> the prepared style statistic: a Gram (1, C, C), a (mean, std) pair, a W2Target...
    regions: dict[str, jax.Array] | None = None


def _layer_weights(layers: tuple[str, ...], values: tuple[float, ...] | None) -> dict[str, jax.Array]:
    values = (1.0,) * len(layers) if values is None else values
    return {n: jnp.asarray(v, jnp.float32) for n, v in zip(layers, values, strict=True)}


class LossWeights(NamedTuple):
    """Every weight of the objective as an array, so one compiled program serves every
    value, and ``vmap`` sweeps them (a leading axis on any leaf)."""

    content: jax.Array  # alpha, of the content term
    style: jax.Array  # beta, of the style term
    tv: jax.Array  # gamma, of the total variation term
    content_layers: dict[str, jax.Array]  # per content layer, inside the content term
    style_layers: dict[str, jax.Array]  # per style layer, inside the style term

    @classmethod
    def from_config(cls, cfg: Config) -> LossWeights:
        f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
        return cls(
            f32(cfg.content_weight),
            f32(cfg.style_weight),
            f32(cfg.tv_weight),
            _layer_weights(cfg.content_layers, cfg.content_layer_weights),
            _layer_weights(cfg.style_layers, style_layer_weights(cfg)),
        )


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The static (shape- and graph-determining) part of the objective: which layers, which
    statistic and normalisations, and how the network runs. Hashable: a ``jit`` static argument.
    The defaults are ``Config``'s."""

    content_layers: tuple[str, ...] = Config.content_layers
    style_layers: tuple[str, ...] = Config.style_layers
    gram_norm: str = Config.gram_norm
    tv_kind: str = Config.tv_kind
    style_statistic: str = Config.style_statistic  # a key of losses.STYLE_STATISTICS
    network: Network = Network()

    @classmethod
    def from_config(cls, cfg: Config, pixels: int | None = None) -> LossSpec:
        """The spec of ``cfg``; ``ops='auto'`` is resolved for images of ``pixels`` pixels
        (``jaxnst.ops.ops_for_run``; ``None``: the fastest step, ``'fast'``)."""
        ops = ops_for_run(pixels, cfg.steps) if cfg.ops == "auto" else cfg.ops
        network = Network(cfg.pooling, cfg.precision, cfg.remat, ops)
        layers = tuple(cfg.content_layers), tuple(cfg.style_layers)
        return cls(*layers, cfg.gram_norm, cfg.tv_kind, cfg.style_statistic, network)

    def features(self, weights: Weights, images: jax.Array, taps) -> dict[str, jax.Array]:
        return self.network.features(weights, images, taps)

    @property
    def forward_only(self) -> LossSpec:
        """This spec with plain-``lax`` kernels, for what is never differentiated (targets, reported terms).

        XLA compiles them in a fraction of the Winograd graph's time; the values agree to float32 rounding.
        """
        return dataclasses.replace(self, network=dataclasses.replace(self.network, ops="lax"))

    def statistic(self, f: jax.Array, where: jax.Array | None = None):
        """The style statistic of feature maps ``f`` (N, H, W, C), of the positions ``where`` weights (N, H, W)."""
        fn = losses.STYLE_STATISTICS[self.style_statistic].statistic
        norm = {"norm": self.gram_norm} if fn is losses.gram else {}
        return fn(f, precision=self.network.matmul_precision, where=where, **norm)

    @property
    def distance(self) -> Callable:
        return losses.STYLE_STATISTICS[self.style_statistic].distance

    @property
    def prepare(self) -> Callable:
        """Turns a blended statistic into the style target (``losses.StyleStatistic``)."""
        return losses.STYLE_STATISTICS[self.style_statistic].prepare

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def split_layers(layers: tuple[str, ...], split_layer: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``layers`` up to ``split_layer`` in the network's order (fine structure) and those after it (coarse).

    >>> split_layers(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "relu3_1")
    (('relu1_1', 'relu2_1', 'relu3_1'), ('relu4_1', 'relu5_1'))
    """
    order = layer_names("vgg19")  # VGG16's taps are a subsequence of VGG19's
    at = order.index(split_layer)
    return tuple(n for n in layers if order.index(n) <= at), tuple(n for n in layers if order.index(n) > at)


def make_targets(
    weights: Weights,
    content: jax.Array | None,
    styles: list[jax.Array],
    spec: LossSpec,
    blend: tuple[float, ...] | None = None,
    *,
    coarse_styles: list[jax.Array] | None = None,
    split_layer: str = Config.split_layer,
    content_masks: list[jax.Array] | None = None,
    style_masks: list[jax.Array | None] | None = None,
) -> Targets:
    """Content features of ``content`` (1, H, W, 3) and the blended style statistics of ``styles``.

    Each style image keeps its own shape; their statistics (Grams, C x C) are
    averaged leaf by leaf with the ``blend`` weights (normalised to sum to 1), as
    jcjohnson/neural-style averages Grams, then prepared (``LossSpec.prepare``: for
    ``w2``, the Gaussian and its covariance's square root). One jitted call (compiled once per
    shapes and ``spec``): run op by op, the network's hundreds of small
    operations would each be compiled on their own. It uses
    ``spec.forward_only``: nothing here is differentiated.

    With ``coarse_styles`` the style layers after ``split_layer`` (``split_layers``) take their
    targets from those images (blended equally) and only the layers up to it from ``styles``:
    fine structure from one painting, coarse from another (Gatys et al. 2017).

    With ``content_masks`` (one per style: weights in [0, 1] of the content's positions, (1, H, W))
    region ``k`` of the image takes the style of ``styles[k]`` (``Targets.regions``); ``style_masks``
    (one per style, or None for the whole image; (1, H, W) at the style's size) pick the part of
    each style image its statistic is taken from. The objective weighs each region's distance by
    its share of the image.
    """
    if content_masks is not None:
        if blend is not None:
            raise JaxnstError("style_blend_weights with content masks: each region takes one style, unblended")
        if coarse_styles or (style_masks is not None and len(style_masks) != len(styles)):
            raise JaxnstError("regions take one style each: give one style (and style mask) per content mask")
        if len(content_masks) != len(styles):
            raise JaxnstError(f"{len(content_masks)} content masks for {len(styles)} style images: give one per style")
        style_masks = [None] * len(styles) if style_masks is None else list(style_masks)
        return _regional_targets(weights, content, list(styles), style_masks, list(content_masks), spec.forward_only)
    blend = (1.0,) * len(styles) if blend is None else tuple(float(b) for b in blend)
    if len(blend) != len(styles):
        raise JaxnstError(
            f"{len(blend)} style_blend_weights for {len(styles)} style images: give one per style",
            "style_blend_weights",
        )
    spec = spec.forward_only
    if not coarse_styles:
        return _targets(weights, content, list(styles), spec, blend)
    fine, coarse = split_layers(spec.style_layers, split_layer)
    targets = _targets(weights, content, list(styles), dataclasses.replace(spec, style_layers=fine), blend)
    deep = dataclasses.replace(spec, content_layers=(), style_layers=coarse)
    deep_style = _targets(weights, None, list(coarse_styles), deep, (1.0,) * len(coarse_styles)).style
    return Targets(targets.content, {**targets.style, **deep_style})


@functools.partial(jax.jit, static_argnames=("spec", "blend"))
def _targets(weights: Weights, content, styles: list, spec: LossSpec, blend: tuple[float, ...]) -> Targets:
    feats = spec.features(weights, content, spec.content_layers) if spec.content_layers and content is not None else {}
    total = sum(blend)
    style = {}
    for b, s in zip(blend, styles, strict=True):
        sf = spec.features(weights, s, spec.style_layers) if spec.style_layers else {}
        for name, f in sf.items():
            stat = jax.tree.map(lambda a: (b / total) * a, spec.statistic(f))  # noqa: B023
            style[name] = jax.tree.map(jnp.add, style[name], stat) if name in style else stat
    return Targets(feats, {name: spec.prepare(stat) for name, stat in style.items()})


@functools.partial(jax.jit, static_argnames=("spec",))
def _regional_targets(weights: Weights, content, styles: list, style_masks: list, content_masks: list, spec: LossSpec):
    feats = spec.features(weights, content, spec.content_layers) if spec.content_layers and content is not None else {}
    per_style = []
    for s, m in zip(styles, style_masks, strict=True):
        sf = spec.features(weights, s, spec.style_layers)
        per_style.append(
            {n: spec.prepare(spec.statistic(f, None if m is None else mask_at(m, n))) for n, f in sf.items()}
        )
    style = {n: jax.tree.map(lambda *a: jnp.stack(a), *(t[n] for t in per_style)) for n in spec.style_layers}
    masks = jnp.stack(content_masks)
    return Targets(feats, style, {n: mask_at(masks, n) for n in spec.style_layers})


def regional_style_loss(feats: dict[str, jax.Array], targets: Targets, layer_weights, spec: LossSpec) -> jax.Array:
    """The style term with ``targets.regions``: per layer, each region's statistic (``where`` its mask)
    against its style's target, weighted by the region's share of the layer's positions; (N,).

    With masks that are all ones, or complementary regions of the same style whose features have
    the same statistics, it equals the plain style term."""
    total = 0.0
    for n in spec.style_layers:
        masks = targets.regions[n]  # (K, N, h, w)
        one = lambda m, t: spec.distance(spec.statistic(feats[n], m), t)  # noqa: B023, E731
        share = jnp.mean(masks, axis=(-2, -1))  # (K, N)
        total = total + layer_weights[n] * jnp.sum(share * jax.vmap(one)(masks, targets.style[n]), axis=0)
    return total


def objective(
    image: jax.Array, weights: Weights, targets: Targets, loss_weights: LossWeights, *, spec: LossSpec
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``alpha * content + beta * style + gamma * tv`` of ``image`` (N, H, W, 3), summed over N.

    Returns ``(total, {'content', 'style', 'tv'})`` with the terms before alpha,
    beta and gamma. The content term is the sum over content layers of
    ``loss_weights.content_layers[l] * content_loss``; the style term
    ``style_loss`` of ``spec``'s statistic with ``loss_weights.style_layers``.
    Each term is a mean over positions, where region weights (masks) would enter.
    """
    feats = spec.features(weights, image, spec.taps)
    lw = loss_weights
    c = sum(
        (lw.content_layers[n] * losses.content_loss(feats[n], targets.content[n]) for n in spec.content_layers),
        jnp.zeros(()),
    )
    if targets.regions is not None:
        s = regional_style_loss(feats, targets, lw.style_layers, spec)
    elif spec.style_layers:
        stats = {n: spec.statistic(feats[n]) for n in spec.style_layers}
        s = losses.style_loss(stats, targets.style, lw.style_layers, distance=spec.distance)
    else:
        s = jnp.zeros(())
    tv = losses.tv_loss(image, kind=spec.tv_kind)
    total = lw.content * c + lw.style * s + lw.tv * tv
    return jnp.sum(total), {"content": jnp.sum(c), "style": jnp.sum(s), "tv": jnp.sum(tv)}


@functools.cache
def _objective(spec: LossSpec) -> Callable:
    # One function per spec (a ``Partial``'s identity is part of the program's key); the image comes last.
    return lambda weights, targets, loss_weights, image: objective(image, weights, targets, loss_weights, spec=spec)


def objective_fn(weights: Weights, targets: Targets, loss_weights: LossWeights, spec: LossSpec) -> Partial:
    """The Gatys objective of ``spec`` as the engine's ``loss_fn(image) -> (loss, terms)``
    (``objective`` with its arrays bound, as a ``jax.tree_util.Partial``: a pytree, so
    ``jaxnst.engine.run`` takes the weights and targets as arguments and ``vmap`` maps them)."""
    return Partial(_objective(spec), weights, targets, loss_weights)
