"""The run of a style transfer as a value: a ``State`` and the pure functions over it.

Shaped like an Optax transformation: ``init(image, learning_rate, ema_decay) -> State``
and ``run(state, problem, n, tol) -> State``, which takes up to ``n`` more
steps in one dispatch (a ``lax.while_loop``), so the host never waits on a
single step. ``State`` is a pytree of arrays: hold it, save it, ``vmap`` it,
continue it later; ``k`` steps and then ``m`` give what ``k + m`` steps give.

``blocks`` is the one host loop of the package: ``stylize`` drives it for one
image, ``stylize_batch`` for a vmapped batch of them, and ``memory.estimate``
lowers the same ``run``. It is a generator, so its caller decides what happens
between blocks (progress, saves, stopping) and may simply stop iterating.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnst.config import Config
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_optimizer, make_step, objective
from jaxnst.vgg import Weights

# Why a run stopped (``State.stop``); STOP_STEPS: it did not, and runs until its steps are done.
STOP_STEPS, STOP_TOL, STOP_NONFINITE = 0, 1, 2
STOP_REASONS = {
    STOP_STEPS: "reached the requested number of steps",
    STOP_TOL: "converged: relative loss change below --tol",
    STOP_NONFINITE: "the loss or the image became NaN or infinite; kept the image before that step (try a lower --lr)",
}


class State(NamedTuple):
    """Everything a run has that the next step needs."""

    image: jax.Array  # (1, H, W, 3); within [0, 1] for Adam (L-BFGS clips only the output)
    opt_state: optax.OptState  # Adam's moments and learning rate, or L-BFGS' memory
    step: jax.Array  # int32, steps taken
    loss: jax.Array  # float32, the loss at the input of the last step taken (NaN before the first)
    stop: jax.Array  # int32, a key of STOP_REASONS; ``run`` takes no step once it is not STOP_STEPS
    # The exponential moving average of the iterates (Adam's bias correction; ``output``):
    average: jax.Array  # like ``image``: a <- d a + (1 - d) x after each step, from (1 - d) x_0
    average_weight: jax.Array  # float32, the same average of 1s: ``output`` is ``average / average_weight``
    ema_decay: jax.Array  # float32, d; 0: the average is the last image


class Problem(NamedTuple):
    """What the objective is evaluated against: the network, the targets and the loss weights."""

    weights: Weights
    targets: Targets
    loss_weights: LossWeights


class Engine(NamedTuple):
    """The pure functions of a run for one ``LossSpec`` and optimiser (see the module docstring).

    ``terms(image, problem)`` returns the unweighted ``{'content', 'style', 'tv'}`` losses.
    """

    init: Callable[[jax.Array, Any], State]
    run: Callable[[State, Problem, Any, Any], State]
    terms: Callable[[jax.Array, Problem], dict[str, jax.Array]]


def make_engine(spec: LossSpec, optimizer: str) -> Engine:
    """The un-jitted ``Engine``: ``jit`` it, ``vmap`` it (``jaxnst.batch``) or ``lower`` it."""
    loss_fn = lambda x, p: objective(x, *p, spec=spec)[0]  # noqa: E731
    # Adam reads its learning rate from the state, so the one in this transformation is unused.
    step = make_step(loss_fn, make_optimizer(optimizer), linesearch=optimizer == "lbfgs")

    def init(image: jax.Array, learning_rate=Config.lr, ema_decay=Config.ema) -> State:
        # Fresh buffers: ``run`` donates the state, and neither the caller's image nor leaves that
        # an optimiser's init shares with it may be donated.
        image = jnp.array(image, jnp.float32, copy=True)
        return State(image, _fresh_opt_state(optimizer, learning_rate, image), jnp.int32(0), jnp.float32(jnp.nan),
                     jnp.int32(STOP_STEPS), *_start_average(image, ema_decay))  # fmt: skip

    def run(state: State, problem: Problem, n, tol) -> State:
        return run_state(step, state, problem, n, tol)

    def terms(image: jax.Array, problem: Problem) -> dict[str, jax.Array]:
        return objective(image, *problem, spec=spec.forward_only)[1]

    return Engine(init, run, terms)


def run_state(step: Callable, state: State, problem, n, tol) -> State:
    """Up to ``n`` more steps of ``step(image, opt_state, problem) -> (image, opt_state, loss)``
    (a ``make_step``) in one ``lax.while_loop``.

    Stops early when the relative change of the loss falls below ``tol`` (if
    ``tol > 0``), or when the loss or the updated image is not finite (then that
    update is not taken and ``state.loss`` keeps the last finite loss).
    """
    until = state.step + n

    def cond(s: State):
        return (s.step < until) & (s.stop == STOP_STEPS)

    def body(s: State) -> State:
        x, o, loss = step(s.image, s.opt_state, problem)
        bad = ~jnp.isfinite(loss) | ~jnp.all(jnp.isfinite(x))
        rel = jnp.abs(s.loss - loss) / jnp.maximum(jnp.abs(s.loss), 1e-30)  # NaN at the first step: no stop
        stop = jnp.where(bad, STOP_NONFINITE, jnp.where((tol > 0) & (rel < tol), STOP_TOL, STOP_STEPS))
        stop = stop.astype(jnp.int32)  # not weakly typed: the carry keeps its type, and the next call its program
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(bad, b, a), new, old)  # noqa: E731
        d = s.ema_decay
        average, weight = d * s.average + (1 - d) * x, d * s.average_weight + (1 - d)
        return State(keep(x, s.image), keep(o, s.opt_state), s.step + jnp.where(bad, 0, 1), keep(loss, s.loss), stop,
                     keep(average, s.average), keep(weight, s.average_weight), d)  # fmt: skip

    return lax.while_loop(cond, body, state)


def _fresh_opt_state(optimizer: str, learning_rate, image: jax.Array):
    # Copies: ``run`` donates the state, and leaves an optimiser's init shares with the image may not be donated.
    return jax.tree.map(lambda a: jnp.array(a, copy=True), make_optimizer(optimizer, learning_rate).init(image))


def _start_average(image: jax.Array, ema_decay) -> tuple[jax.Array, jax.Array, jax.Array]:
    d = jnp.asarray(ema_decay, jnp.float32)
    return (1 - d) * image, 1 - d, d  # as if averaging had started with this image: ``output`` gives it back


def output(state: State) -> jax.Array:
    """The run's image: the bias-corrected moving average of its iterates (crowsonkb's
    ``--avg-decay``, Adam's correction), which is the last iterate when ``ema_decay`` is 0."""
    return state.average / state.average_weight[..., None, None, None, None]  # (1, H, W, 3) per item


def _resize(x: jax.Array, hw: tuple[int, int], method: str) -> jax.Array:
    return jax.image.resize(x, (*x.shape[:-3], *hw, x.shape[-1]), method)


def rescale(state: State, hw: tuple[int, int], optimizer: str) -> State:
    """``state`` carried to images of ``hw`` = (height, width), for the next scale of a run.

    The image is ``output(state)`` resized (bicubic) and clipped to [0, 1]; Adam's moments are
    resized too (the first bicubic, the second bilinear and kept >= 0, as crowsonkb's
    ``scale_adam``), its step count and learning rate kept; L-BFGS starts afresh (its memory
    holds directions of the old shape); the average starts again at the new image; the step
    count, loss and stop start again.
    """
    image = jnp.clip(_resize(output(state), hw, "cubic"), 0.0, 1.0)
    if optimizer == "adam":
        is_adam = lambda a: isinstance(a, optax.ScaleByAdamState)  # noqa: E731

        def moments(a):
            if not is_adam(a):
                return a
            return a._replace(mu=_resize(a.mu, hw, "cubic"), nu=jnp.maximum(_resize(a.nu, hw, "linear"), 0.0))

        opt_state = jax.tree.map(moments, state.opt_state, is_leaf=is_adam)
    else:
        opt_state = _fresh_opt_state(optimizer, Config.lr, image)  # L-BFGS ignores the rate
    return State(image, opt_state, jnp.zeros_like(state.step), jnp.full_like(state.loss, jnp.nan),
                 jnp.zeros_like(state.stop), *_start_average(image, state.ema_decay))  # fmt: skip


@functools.lru_cache(maxsize=16)
def compiled_engine(spec: LossSpec, optimizer: str) -> Engine:
    """``make_engine`` with ``run`` and ``terms`` jitted (``run`` donates the state), cached so
    that repeated runs with the same spec and shapes reuse one compiled program."""
    e = make_engine(spec, optimizer)
    return Engine(e.init, jax.jit(e.run, donate_argnums=0), jax.jit(e.terms))


class Block(NamedTuple):
    """The state after a block of steps, with its counters already on the host."""

    state: State
    step: np.ndarray  # steps taken (one per item for a vmapped state)
    stop: np.ndarray  # STOP_* codes
    loss: np.ndarray
    done: bool  # no item will take another step


def blocks(
    run: Callable,
    state: State,
    problem: Problem,
    steps,
    tol,
    every: int,
    *,
    put: Callable = jnp.asarray,
    get: Callable = np.asarray,
) -> Iterator[Block]:
    """Runs ``state`` until each item has taken ``steps`` steps or stopped, yielding a ``Block``
    after each call of ``run``. The first call takes one step, so the first block arrives as soon
    as the program is compiled; the others end at multiples of ``every`` (and at ``steps``).
    Nothing is yielded when nothing is left to do.

    ``steps`` is an int, or one per item (an array like ``state.step``) for a vmapped
    ``run``; ``put`` places the per-item step counts it passes to ``run`` and ``get``
    fetches counters to the host (multi-host meshes need both).
    """
    steps = np.asarray(steps)
    step, stop = get(state.step), get(state.stop)
    first = True
    while True:
        active = (stop == STOP_STEPS) & (step < steps)
        if not active.any():
            return
        n = 1 if first else every - step % every
        n = np.where(active, np.minimum(n, steps - step), 0).astype(np.int32)
        state = run(state, problem, put(n), tol)
        first = False
        step, stop, loss = get(state.step), get(state.stop), get(state.loss)
        yield Block(state, step, stop, loss, not ((stop == STOP_STEPS) & (step < steps)).any())
