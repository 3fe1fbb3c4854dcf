"""Style transfer of one image: its inputs checked, then ``jaxnst.transfer``'s loop.

The library never prints or saves: progress leaves through ``callback``, a
``Progress`` after each block of steps, which carries the run's ``State``.
(``jaxnst.transfer.scales`` is the generator underneath, for callers who want
to drive the loop themselves.)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxnst import color, engine, transfer
from jaxnst.config import Config, scale_schedule, validate
from jaxnst.engine import STOP_REASONS, State, output
from jaxnst.errors import JaxnstError
from jaxnst.transfer import as_batch, initial_image, scale_shapes, scaled_hw, start
from jaxnst.vgg import Weights, check_image_size


@dataclasses.dataclass(frozen=True)
class Progress:
    """What ``stylize`` reports after each block of steps (and once more at the end)."""

    step: int  # steps done so far
    steps: int  # steps asked for (at this scale)
    loss: float  # total loss at the last step's input image
    image: jax.Array  # current image (``engine.output``: the moving average with ``ema``), (h, w, 3) in [0, 1]
    elapsed: float  # seconds since the loop started, compile included
    done: bool = False
    reason: str = ""  # why the run stopped, when ``done``
    terms_fn: Callable[[], dict[str, float]] = dataclasses.field(default=lambda: {}, repr=False)
    # The run's state. Its buffers are reused by the next block: save or copy it inside the callback.
    state: State | None = dataclasses.field(default=None, repr=False)
    stop: int = 0  # a key of jaxnst.engine.STOP_REASONS, when ``done``
    scale: int = 0  # which scale of ``config.scale_schedule`` (``step`` and ``steps`` count within it)
    scales: int = 1

    def terms(self) -> dict[str, float]:
        """Unweighted ``{'content', 'style', 'tv'}`` losses of ``image`` (costs one forward pass)."""
        return self.terms_fn()


def check_arch(cfg: Config, weights: Weights) -> None:
    """Raises ``JaxnstError`` unless ``weights`` are of the architecture ``cfg`` names."""
    if cfg.model != weights.arch:
        raise JaxnstError(
            f"the weights are {weights.arch} but the config asks for {cfg.model}: use model {weights.arch}", "model"
        )


def check_image_sizes(cfg: Config, content_shapes, style_shapes) -> None:
    """Raises ``JaxnstError`` unless every content leaves each tap of ``cfg`` at least a pixel, and every
    style each style tap (``jaxnst.vgg.check_image_size``), at the first (smallest) scale; shapes
    are (..., H, W, 3)."""
    for shape in content_shapes:
        check_image_size(shape, cfg.content_layers + cfg.style_layers, "content image")
    for shape in style_shapes:
        check_image_size(shape, cfg.style_layers, "style image")
    ratio = scale_schedule(cfg)[0][0] / cfg.size
    if ratio < 1:
        smallest = lambda shape: (*scaled_hw(shape[-3:-1], ratio), shape[-1])  # noqa: E731
        for shape in content_shapes:
            check_image_size(smallest(shape), cfg.content_layers + cfg.style_layers, "content image at the first scale",
                             "min_size")  # fmt: skip
        for shape in style_shapes:
            check_image_size(smallest(shape), cfg.style_layers, "style image at the first scale", "min_size")


def as_mask(m, image_shape: tuple[int, ...], what: str) -> jax.Array:
    """A mask (H, W) or (1, H, W) of weights in [0, 1] for an image of ``image_shape`` (..., H, W, 3),
    as (1, H, W) float32; else a ``JaxnstError`` naming ``what``."""
    m = jnp.asarray(m, jnp.float32)
    m = m[None] if m.ndim == 2 else m
    if m.ndim != 3 or m.shape[0] != 1 or m.shape[1:] != tuple(image_shape[-3:-1]):
        raise JaxnstError(f"a {what} of shape {m.shape} for an image of {image_shape[-3:-1]}: give (H, W) of its image")
    return m


def as_masks(content_masks, style_masks, content_shape: tuple[int, ...], styles) -> tuple:
    """``(content masks, style masks)`` checked and as ``as_mask`` gives them: one content mask per style
    (``content_shape``'s size), and none or one style mask (or None) per style (its size); ``(None, None)``
    without masks."""
    check_masks(content_masks, style_masks, len(styles))
    if content_masks is None:
        return None, None
    n = len(styles)
    cm = tuple(as_mask(m, content_shape, "content mask") for m in content_masks)
    sm = tuple(None if m is None else as_mask(m, as_batch(s, "style").shape, "style mask")
               for m, s in zip(style_masks or [None] * n, styles, strict=True))  # fmt: skip
    return cm, sm


def check_masks(content_masks, style_masks, n: int) -> None:
    """Raises ``JaxnstError`` unless there is one content mask per style (of ``n``), and no style masks or one
    (or None) per style too; only their numbers: the masks may still be files (the CLI checks before reading)."""
    if content_masks is None and style_masks is not None:
        raise JaxnstError("style_masks need content masks: give one content mask per style too", "style_masks")
    for name, masks in (("content_masks", content_masks), ("style_masks", style_masks)):
        if masks is not None and len(masks) != n:
            raise JaxnstError(f"{len(masks)} {name} for {n} style images: give one per style", name)


def stylize(
    content,
    styles: Sequence,
    weights: Weights,
    config: Config = Config(),
    *,
    callback: Callable[[Progress], None] | None = None,
    every: int = 10,
    init_image=None,
    place: Callable[[jax.Array], jax.Array] | None = None,
    state: State | None = None,
    coarse_styles: Sequence | None = None,
    content_masks: Sequence | None = None,
    style_masks: Sequence | None = None,
    objective: Callable[[Callable, tuple[int, int]], Callable] | None = None,
) -> jax.Array:
    """Gatys style transfer: an image with the content of ``content`` and the style of ``styles``.

    ``content`` and each style are RGB float arrays (H, W, 3) in [0, 1]; styles
    keep their own shapes (resize them beforehand, see ``jaxnst.load_image``).
    Runs ``config.steps`` steps of ``config.optimizer``, ``every`` steps per
    dispatch, calling ``callback(Progress)`` after each block and at the end.
    Returns the image (``engine.output``: with ``config.ema``, the moving average of
    the iterates), (H, W, 3) in [0, 1]. ``config.preserve_color`` keeps the content's
    colours (``jaxnst.color``): the images it reports and returns are the finished ones.

    With ``config.min_size`` it runs coarse to fine, the scales of
    ``config.scale_schedule`` up to the content's long side: at each, the content
    and styles shrunk by ``side / long side``, the targets computed again, and
    the state carried up by ``engine.rescale``; each shape compiles once.

    ``state`` continues a run from its ``State`` (e.g. ``Progress.state`` saved with
    ``jaxnst.checkpoint``), at the scale its shape belongs to, up to the steps asked
    for, instead of starting one; with the same arguments the result is that of the
    uninterrupted run.

    ``coarse_styles`` (images like ``styles``) give the targets of the style layers after
    ``config.split_layer``: fine structure from ``styles``, coarse from these (``make_targets``).

    ``content_masks`` (one per style; (H, W) weights in [0, 1] at the content's shape) paint
    region ``k`` in the style of ``styles[k]``; ``style_masks`` (one per style, each None or at
    its style's shape) take each style's statistics from a part of it (``make_targets``).

    ``objective(loss_fn, hw) -> loss_fn`` changes each scale's objective (of images (1, *hw, 3)): a
    term of one's own added to the Gatys loss, as ``jaxnst.video`` adds its temporal one. Return a
    ``jax.tree_util.Partial`` of a module-level function over the arrays, so that each shape compiles once.

    ``place`` puts an image-shaped (1, H, W, 3) array on devices (e.g.
    ``jax.device_put(x, sharding)``); it is applied to the content and to the
    start image, and the targets, optimiser state and loop follow their
    placement (``jaxnst.batch.stylize_spatial`` splits the height this way).

    >>> import numpy as np, jaxnst
    >>> w = jaxnst.random_weights("vgg19", seed=0)  # NOT pretrained: jaxnst.get_weights() for real work
    >>> content, style = (np.random.default_rng(i).uniform(size=(32, 32, 3)).astype(np.float32) for i in (0, 1))
    >>> cfg = jaxnst.Config(steps=3, min_size=None, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    >>> jaxnst.stylize(content, [style], w, cfg).shape
    (32, 32, 3)
    """
    cfg = validate(config)
    check_arch(cfg, weights)
    if not styles:
        raise JaxnstError("no style image: give at least one")
    place = place or (lambda a: a)
    original = place(as_batch(content, "content"))  # its colours, for ``preserve_color``
    n = len(styles)
    content_masks, style_masks = as_masks(content_masks, style_masks, original.shape, styles)
    every_style = [as_batch(s, "style") for s in (*styles, *(coarse_styles or ()))]
    content, every_style = color.prepare(original, every_style, mode=cfg.preserve_color,
                                         histogram_mode=cfg.histogram_mode)  # fmt: skip
    if init_image is not None and cfg.preserve_color == "luminance":
        init_image = color.luminance(as_batch(init_image, "init image"))
    finish = lambda img: color.finish(jnp.clip(img, 0.0, 1.0), original[0], mode=cfg.preserve_color)  # noqa: E731
    # The scales end at the content's long side, whatever size it was loaded at.
    sized = dataclasses.replace(cfg, size=max(content.shape[1:3]))
    check_image_sizes(sized, [content.shape], [s.shape for s in every_style])
    schedule = scale_schedule(sized)
    shapes = scale_shapes(sized, content.shape[1:3], [s.shape[1:3] for s in every_style])
    first = 0
    if state is not None:  # the scale it was saved at, told by its shape
        at = [k for k, (hw, _) in enumerate(shapes) if tuple(state.image.shape[1:3]) == hw]
        if not at:
            want = " or ".join(f"{hw}" for hw, _ in shapes)
            raise JaxnstError(f"the state's image is {state.image.shape[1:3]}, this run's scales are {want}: resize")
        first = at[-1]

    def problem(k: int) -> transfer.Problem:
        pb = transfer.problem(weights, cfg, schedule[k][1], content, every_style[:n], shapes[k],
                              coarse_styles=every_style[n:], content_masks=content_masks, style_masks=style_masks,
                              place=place)  # fmt: skip
        if objective is None:
            return pb
        return pb._replace(loss_fn=objective(pb.loss_fn, shapes[k][0]), terms_fn=objective(pb.terms_fn, shapes[k][0]))

    stages = transfer.scales(
        state, [steps for _, steps in schedule], jnp.float32(cfg.tol), every, first=first, problem=problem,
        init=lambda k, pb: start(place(initial_image(cfg, pb.content, pb.styles, init_image)), cfg),
        rescale=lambda s, k: _rescale(s, shapes[k][0]),
        run=lambda s, pb, n, tol: engine.run(s, pb.loss_fn, n, tol=tol, donate=True),
    )  # fmt: skip
    t0 = time.perf_counter()
    for stage in stages:
        block, state = stage.block, stage.block.state
        if callback is not None:
            raw = jnp.clip(output(state), 0.0, 1.0)  # what the losses see; ``img``: what the user sees
            terms_fn = lambda: {k: float(v) for k, v in _aux(stage.problem.terms_fn, raw).items()}  # noqa: B023, E731
            reason = STOP_REASONS[int(block.stop)] if stage.done else ""
            callback(Progress(int(block.step), schedule[stage.scale][1], float(block.loss), finish(raw[0]),
                              time.perf_counter() - t0, stage.done, reason, terms_fn, state, int(block.stop),
                              stage.scale, len(schedule)))  # fmt: skip
    # A run that ended early (a NaN at a coarse scale) still returns the content's shape.
    return finish(transfer.resize(output(state), content.shape[1:3])[0])


_rescale = jax.jit(engine.rescale, static_argnums=1)
_aux = jax.jit(lambda loss_fn, image: loss_fn(image)[1])
