"""Style transfer of one image, end to end: targets once, then the jitted loop.

The library never prints or saves: progress leaves through ``callback``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxnst.config import Config, validate
from jaxnst.errors import JaxnstError
from jaxnst.optimize import (
    STOP_REASONS,
    Hyper,
    LossSpec,
    make_optimizer,
    make_step,
    make_targets,
    objective,
    run_steps,
)
from jaxnst.vgg import Weights


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

    def terms(self) -> dict[str, float]:
        """Unweighted ``{'content', 'style', 'tv'}`` losses of ``image`` (costs one forward pass)."""
        return self.terms_fn()


def loop_functions(spec: LossSpec, optimizer: str):
    """The un-jitted ``(run, terms)`` of one image, for ``jit`` here and ``vmap`` in ``jaxnst.batch``.

    ``run(image, opt_state, n, tol, weights, targets, hyper)`` is ``run_steps``
    over the step; ``terms(image, weights, targets, hyper)`` the unweighted losses.
    The learning rate is not baked in: Adam reads it from ``opt_state``.
    """
    loss_fn = lambda x, w, t, h: objective(x, w, t, h, spec=spec)[0]  # noqa: E731
    opt = make_optimizer(Config(optimizer=optimizer))
    step = make_step(loss_fn, opt, linesearch=optimizer == "lbfgs")
    terms = lambda x, w, t, h: objective(x, w, t, h, spec=spec.forward_only)[1]  # noqa: E731
    return functools.partial(run_steps, step), terms


@functools.lru_cache(maxsize=16)
def compiled_functions(spec: LossSpec, optimizer: str):
    """Jitted ``(run, terms)`` for a loss spec and optimiser name, cached so that
    repeated calls with the same shapes reuse one compiled program."""
    run, terms = loop_functions(spec, optimizer)
    return jax.jit(run, donate_argnums=(0, 1)), jax.jit(terms)


def check_arch(cfg: Config, weights: Weights) -> None:
    """Raises ``JaxnstError`` unless ``weights`` are of the architecture ``cfg`` names."""
    if cfg.model != weights.arch:
        raise JaxnstError(
            f"the weights are {weights.arch} but the config asks for {cfg.model}: use --model {weights.arch}"
        )


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
        raise JaxnstError(f"--init {cfg.init!r}: use content, noise, style, or an image file")
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
) -> jax.Array:
    """Gatys style transfer: an image with the content of ``content`` and the style of ``styles``.

    ``content`` and each style are RGB float arrays (H, W, 3) in [0, 1]; styles
    keep their own shapes (resize them beforehand, see ``jaxnst.load_image``).
    Runs ``config.steps`` steps of ``config.optimizer``, ``every`` steps per
    dispatch, calling ``callback(Progress)`` after each block and at the end.
    Returns the image, (H, W, 3) in [0, 1].

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
    spec = LossSpec.from_config(cfg)
    targets = make_targets(weights, content, styles, spec, cfg.style_blend_weights)
    hyper = Hyper.from_config(cfg)
    # Fresh buffers: the loop donates them, and neither the caller's arrays nor
    # leaves that an optimiser's init shares may be donated.
    image = place(jnp.array(initial_image(cfg, content, styles, init_image), copy=True))
    opt_state = jax.tree.map(lambda a: jnp.array(a, copy=True), make_optimizer(cfg).init(image))
    run, terms = compiled_functions(spec, cfg.optimizer)

    t0 = time.perf_counter()

    def report(step, loss, done, reason=""):
        if callback is not None:
            img = jnp.clip(image[0], 0.0, 1.0)
            terms_fn = lambda: {k: float(v) for k, v in terms(img[None], weights, targets, hyper).items()}  # noqa: E731
            callback(Progress(step, cfg.steps, loss, img, time.perf_counter() - t0, done, reason, terms_fn))

    step, code, loss = 0, 0, float("nan")
    while step < cfg.steps and code == 0:
        n = min(every, cfg.steps - step)
        image, opt_state, loss, k, code = run(image, opt_state, n, jnp.float32(cfg.tol), weights, targets, hyper)
        step, code, loss = step + int(k), int(code), float(loss)
        done = code != 0 or step >= cfg.steps
        report(step, loss, done, STOP_REASONS[code] if done else "")
    if cfg.steps == 0:
        report(0, loss, True, STOP_REASONS[code])
    image = jnp.clip(image[0], 0.0, 1.0)
    return image
