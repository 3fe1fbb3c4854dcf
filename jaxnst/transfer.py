"""The algorithm, in the order it runs: Gatys style transfer, coarse to fine.

1. ``scale_shapes``: the scales of ``config.scale_schedule``, each side a fraction of the
   content's long side; the content, styles and masks are shrunk to each (``resize``).
2. ``problem``: at each scale the targets are computed again from the shrunk images
   (``optimize.make_targets``: content features, style statistics, regions) and bound into
   the objective, a pure ``loss_fn(image) -> (loss, terms)`` (``optimize.objective_fn``).
3. ``start``: the first scale starts from ``initial_image`` under the configured optax
   optimiser; each later one carries the state up (``engine.rescale``: the image and Adam's
   moments resized).
4. ``scales``: the loop. At each scale, ``engine.run`` takes the scale's steps in blocks
   (``engine.blocks``), each one compiled ``lax.while_loop``, until they are done or the run
   stops (``tol``; a NaN ends the whole run). The image is ``engine.output`` (the moving
   average of the iterates), its colours finished by ``jaxnst.color``.

``scales`` drives every entry point: ``jaxnst.stylize`` (one image) and ``jaxnst.stylize_batch``
(a vmapped batch on a mesh, which brings its own targets, placement and counters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import engine
from jaxnst.config import INIT_CHOICES, Config, scale_schedule
from jaxnst.engine import STOP_NONFINITE, Block, State, blocks
from jaxnst.errors import JaxnstError
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.vgg import Weights


def scaled_hw(hw: tuple[int, int], ratio: float) -> tuple[int, int]:
    """``hw`` = (height, width) times ``ratio``, rounded, at least 1 each."""
    return tuple(max(1, round(n * ratio)) for n in hw)


def scale_shapes(cfg: Config, content_hw: tuple[int, int], style_hws) -> list[tuple[tuple[int, int], list]]:
    """``(content hw, [style hw, ...])`` at each scale of ``config.scale_schedule(cfg)``: the content and
    styles are given at the last scale, and each earlier one shrinks them by ``side / cfg.size``."""
    return [
        (scaled_hw(content_hw, side / cfg.size), [scaled_hw(hw, side / cfg.size) for hw in style_hws])
        for side, _ in scale_schedule(cfg)
    ]


def resize(image: jax.Array, hw: tuple[int, int]) -> jax.Array:
    """(..., H, W, 3) -> (..., h, w, 3), linear and antialiased (averaged over the pixels it shrinks)."""
    shape = (*image.shape[:-3], *hw, image.shape[-1])
    return image if image.shape == shape else jax.image.resize(image, shape, "linear", antialias=True)


def resize_mask(m: jax.Array, hw: tuple[int, int]) -> jax.Array:
    """A (1, H, W) mask at ``hw``, averaged over the pixels it shrinks (antialiased)."""
    return m if m.shape[1:] == tuple(hw) else jax.image.resize(m, (1, *hw), "linear", antialias=True)


def initial_image(cfg: Config, content: jax.Array, styles: Sequence[jax.Array], init_image=None) -> jax.Array:
    """The start image (1, H, W, 3) named by ``cfg.init`` (``config.INIT_CHOICES``) or ``init_image`` (resized).

    ``noise`` is uniform in [0, 1]; ``gray`` 0.5 plus uniform noise below 1/255; ``normal`` a normal
    around 0.5 with deviation 0.25, truncated to [0, 1]; ``style-stats`` the same per channel with the
    mean and deviation of the styles' pixels (blended as ``style_blend_weights``: the pooled pixels'
    moments); ``style`` the first style resized. The random ones draw from ``cfg.seed``.
    """
    shape = content.shape
    key = jax.random.key(cfg.seed)

    def truncated_normal(mean, std):
        lo, hi = (0.0 - mean) / std, (1.0 - mean) / std
        return mean + std * jax.random.truncated_normal(key, lo, hi, shape, jnp.float32)

    if init_image is not None:
        img = as_batch(init_image, "init image")
    elif cfg.init == "content":
        return content
    elif cfg.init == "noise":
        return jax.random.uniform(key, shape, jnp.float32)
    elif cfg.init == "gray":
        return 0.5 + jax.random.uniform(key, shape, jnp.float32) / 255
    elif cfg.init == "normal":
        return truncated_normal(0.5, 0.25)
    elif cfg.init == "style-stats":
        blend = np.asarray(cfg.style_blend_weights or [1.0] * len(styles), np.float32)
        blend = blend / blend.sum()
        mean = sum(b * jnp.mean(s, axis=(0, 1, 2)) for b, s in zip(blend, styles, strict=True))
        second = sum(b * jnp.mean(jnp.square(s), axis=(0, 1, 2)) for b, s in zip(blend, styles, strict=True))
        return truncated_normal(mean, jnp.sqrt(jnp.maximum(second - jnp.square(mean), 1e-6)))
    elif cfg.init == "style":
        img = styles[0]
    else:
        raise JaxnstError(f"init {cfg.init!r}: use {', '.join(INIT_CHOICES)}, or an image file", "init")
    return resize(img, shape[1:3])


def as_batch(a, what: str) -> jax.Array:
    """``a`` as one float32 RGB image with a batch axis, (1, H, W, 3); else a ``JaxnstError`` naming ``what``."""
    a = jnp.asarray(a, jnp.float32)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[0] != 1 or a.shape[-1] != 3:
        raise JaxnstError(f"{what} must be one RGB image, (H, W, 3) or (1, H, W, 3); got shape {a.shape}")
    return a


def start(image: jax.Array, cfg: Config) -> State:
    """``engine.init`` of ``image`` with ``cfg``'s optimiser, learning rate and moving average."""
    return engine.with_learning_rate(engine.init(image, engine.optimizer(cfg.optimizer), ema=cfg.ema), cfg.lr)


class Problem(NamedTuple):
    """One image's objective at one scale, and the shrunk images it was built from."""

    loss_fn: Callable  # image -> (loss, terms), for ``engine.run``
    terms_fn: Callable  # the same, forward only: for reporting the terms
    content: jax.Array  # (1, h, w, 3)
    styles: list  # (1, h_k, w_k, 3) each


def problem(
    weights: Weights,
    cfg: Config,
    steps: int,
    content: jax.Array,
    styles: Sequence[jax.Array],
    shapes: tuple,
    *,
    coarse_styles: Sequence[jax.Array] = (),
    content_masks: Sequence[jax.Array] | None = None,
    style_masks: Sequence | None = None,
    place: Callable[[jax.Array], jax.Array] = lambda a: a,
) -> Problem:
    """The Gatys objective of one image at the scale of ``shapes`` (a ``scale_shapes`` entry for the
    content and ``styles + coarse_styles``), for a run of ``steps`` steps there: the images and
    masks (1, ...) shrunk to it, their targets computed, the loss weights of ``cfg``. ``place`` puts the
    shrunk content on devices (``jaxnst.stylize``'s)."""
    hw, style_hws = shapes
    content = place(resize(content, hw))
    every = [resize(s, shw) for s, shw in zip((*styles, *coarse_styles), style_hws, strict=True)]
    styles, coarse = every[: len(styles)], every[len(styles) :]
    spec = LossSpec.from_config(dataclasses.replace(cfg, steps=steps), hw[0] * hw[1])
    if content_masks is not None:
        content_masks = [resize_mask(m, hw) for m in content_masks]
        style_masks = [None if m is None else resize_mask(m, s.shape[1:3])
                       for m, s in zip(style_masks or [None] * len(styles), styles, strict=True)]  # fmt: skip
    targets = make_targets(weights, content, styles, spec, cfg.style_blend_weights, coarse_styles=coarse,
                           split_layer=cfg.split_layer, content_masks=content_masks,
                           style_masks=style_masks)  # fmt: skip
    loss_weights = LossWeights.from_config(cfg)
    return Problem(objective_fn(weights, targets, loss_weights, spec),
                   objective_fn(weights, targets, loss_weights, spec.forward_only), content, styles)  # fmt: skip


class Stage(NamedTuple):
    """What ``scales`` yields after each block of steps."""

    scale: int  # the index of the scale
    block: Block  # the state after the block, its counters on the host (``step`` counts within the scale)
    before: np.ndarray  # steps taken at earlier scales (per item)
    done: bool  # the run is over: this is its last block
    problem: Any  # what ``problem(scale)`` returned


def scales(
    state: State | None,
    steps: Sequence,
    tol,
    every: int,
    *,
    problem: Callable[[int], Any],
    init: Callable[[int, Any], State],
    rescale: Callable[[State, int], State],
    run: Callable[[State, Any, Any, Any], tuple[State, Any]],
    first: int = 0,
    live=True,
    put: Callable = jnp.asarray,
    get: Callable = np.asarray,
) -> Iterator[Stage]:
    """The coarse-to-fine loop of one run, or of a vmapped batch of runs (an item axis on every array).

    For each scale ``k`` from ``first``: ``problem(k)`` builds its objective; the state is
    ``init(k, problem)`` at the first scale when ``state`` is None, else ``rescale(state, k)``
    after the first; then ``run(state, problem, n, tol)`` takes ``steps[k]`` steps (an int,
    or one per item) in blocks of ``every`` (``engine.blocks``, with ``put`` and ``get``). A
    ``Stage`` is yielded after each block; the last has ``done``, and there is always one.

    An item whose loss or image became non-finite takes no more steps; the run ends early when
    no item of ``live`` (True, or a mask of the items: padding is not live) can go on. ``tol``
    ends a scale, not the run.
    """
    steps = [np.asarray(s) for s in steps]
    alive, before = np.asarray(live), 0
    for k in range(first, len(steps)):
        pb = problem(k)
        if state is None:
            state = init(k, pb)
        elif k > first:
            state = rescale(state, k)
        # Nothing to do at this scale (no steps, or a continued run already done) leaves this block.
        block, ran = Block(state, get(state.step), get(state.stop), get(state.loss), True), False
        run_n = lambda s, n, tol: run(s, pb, n, tol)  # noqa: B023, E731
        for block in blocks(run_n, state, np.where(alive, steps[k], 0), tol, every, put=put, get=get):
            state, ran = block.state, True
            if not block.done:
                yield Stage(k, block, before, False, pb)
        alive = alive & (block.stop != STOP_NONFINITE)
        if k == len(steps) - 1 or not alive.any():
            yield Stage(k, block, before, True, pb)
            return
        if ran:
            yield Stage(k, block, before, False, pb)
        before = before + block.step
