"""Style transfer of one image, end to end: targets once, then the engine's loop.

The library never prints or saves: progress leaves through ``callback``, a
``Progress`` after each block of steps, which carries the run's ``State``.
(``jaxnst.engine.blocks`` is the generator underneath, for callers who want
to drive the loop themselves.)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.config import Config, validate
from jaxnst.engine import STOP_REASONS, Block, Problem, State, blocks, compiled_engine
from jaxnst.errors import JaxnstError
from jaxnst.optimize import LossSpec, LossWeights, make_targets
from jaxnst.vgg import Weights, check_image_size


@dataclasses.dataclass(frozen=True)
class Progress:
    """What ``stylize`` reports after each block of steps (and once more at the end)."""

    step: int  # steps done so far
    steps: int  # steps asked for
    loss: float  # total loss at the last step's input image
    image: jax.Array  # current image, (H, W, 3) in [0, 1]
    elapsed: float  # seconds since the loop started, compile included
    done: bool = False
    reason: str = ""  # why the run stopped, when ``done``
    terms_fn: Callable[[], dict[str, float]] = dataclasses.field(default=lambda: {}, repr=False)
    # The run's state. Its buffers are reused by the next block: save or copy it inside the callback.
    state: State | None = dataclasses.field(default=None, repr=False)
    stop: int = 0  # a key of jaxnst.engine.STOP_REASONS, when ``done``

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
    style each style tap (``jaxnst.vgg.check_image_size``); shapes are (..., H, W, 3)."""
    for shape in content_shapes:
        check_image_size(shape, cfg.content_layers + cfg.style_layers, "content image")
    for shape in style_shapes:
        check_image_size(shape, cfg.style_layers, "style image")


def as_batch(a, what: str) -> jax.Array:
    """``a`` as one float32 RGB image with a batch axis, (1, H, W, 3); else a ``JaxnstError`` naming ``what``."""
    a = jnp.asarray(a, jnp.float32)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[0] != 1 or a.shape[-1] != 3:
        raise JaxnstError(f"{what} must be one RGB image, (H, W, 3) or (1, H, W, 3); got shape {a.shape}")
    return a


def initial_image(cfg: Config, content: jax.Array, styles: Sequence[jax.Array], init_image=None) -> jax.Array:
    """The start image (1, H, W, 3) named by ``cfg.init``: content, noise, style or ``init_image``."""
    shape = content.shape
    if init_image is not None:
        img = as_batch(init_image, "init image")
    elif cfg.init == "content":
        return content
    elif cfg.init == "noise":
        return jax.random.uniform(jax.random.key(cfg.seed), shape, jnp.float32)
    elif cfg.init == "style":
        img = styles[0]
    else:
        raise JaxnstError(f"init {cfg.init!r}: use content, noise, style, or an image file", "init")
    return jax.image.resize(img, shape, "linear", antialias=True) if img.shape != shape else img


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
) -> jax.Array:
    """Gatys style transfer: an image with the content of ``content`` and the style of ``styles``.

    ``content`` and each style are RGB float arrays (H, W, 3) in [0, 1]; styles
    keep their own shapes (resize them beforehand, see ``jaxnst.load_image``).
    Runs ``config.steps`` steps of ``config.optimizer``, ``every`` steps per
    dispatch, calling ``callback(Progress)`` after each block and at the end.
    Returns the image, (H, W, 3) in [0, 1].

    ``state`` continues a run from its ``State`` (e.g. ``Progress.state`` saved with
    ``jaxnst.checkpoint``) up to ``config.steps`` in all, instead of starting one; with the
    same arguments the result is that of the uninterrupted run.

    ``place`` puts an image-shaped (1, H, W, 3) array on devices (e.g.
    ``jax.device_put(x, sharding)``); it is applied to the content and to the
    start image, and the targets, optimiser state and loop follow their
    placement (``jaxnst.batch.stylize_spatial`` splits the height this way).

    >>> w = jaxnst.random_weights("vgg19", seed=0)
    >>> out = jaxnst.stylize(content, [style], w, jaxnst.Config(steps=10))
    """
    cfg = validate(config)
    check_arch(cfg, weights)
    if not styles:
        raise JaxnstError("no style image: give at least one")
    place = place or (lambda a: a)
    content = place(as_batch(content, "content"))
    styles = [as_batch(s, "style") for s in styles]
    check_image_sizes(cfg, [content.shape], [s.shape for s in styles])
    spec = LossSpec.from_config(cfg, content.shape[1] * content.shape[2])
    problem = Problem(
        weights, make_targets(weights, content, styles, spec, cfg.style_blend_weights), LossWeights.from_config(cfg)
    )
    engine = compiled_engine(spec, cfg.optimizer)
    if state is None:
        state = engine.init(place(initial_image(cfg, content, styles, init_image)), cfg.lr)
    elif state.image.shape != content.shape:
        raise JaxnstError(f"the state's image is {state.image.shape[1:3]}, the content {content.shape[1:3]}: resize")
    t0 = time.perf_counter()

    def report(block: Block):
        if callback is not None:
            img = jnp.clip(block.state.image[0], 0.0, 1.0)
            terms_fn = lambda: {k: float(v) for k, v in engine.terms(img[None], problem).items()}  # noqa: E731
            reason = STOP_REASONS[int(block.stop)] if block.done else ""
            p = Progress(int(block.step), cfg.steps, float(block.loss), img, time.perf_counter() - t0, block.done,
                         reason, terms_fn, block.state, int(block.stop))  # fmt: skip
            callback(p)

    block = None
    for block in blocks(engine.run, state, problem, cfg.steps, jnp.float32(cfg.tol), every):
        state = block.state
        report(block)
    if block is None:  # nothing to do: no steps asked for, or a continued run that is already done
        report(Block(state, *(np.asarray(a) for a in (state.step, state.stop, state.loss)), True))
    return jnp.clip(state.image[0], 0.0, 1.0)
