"""The optimisation of an image, shaped like Optax: a ``State`` and pure functions over it.

>>> import jax.numpy as jnp, optax
>>> from jaxnst import engine
>>> loss_fn = lambda x: (jnp.sum((x - 0.25) ** 2), {})  # any pure function: image -> (loss, aux)
>>> state = engine.init(jnp.zeros((1, 4, 4, 3)), optax.sgd(0.1))
>>> state, aux = engine.run(state, loss_fn, 50)
>>> round(float(engine.output(state).mean()), 4)
0.25

``init(image, tx, ema=...)`` starts a run with any ``optax.GradientTransformation``;
``run(state, loss_fn, n)`` takes up to ``n`` more steps in one dispatch (a
``lax.while_loop``), so the host never waits on a single step; ``rescale(state, hw)``
carries a run to the next scale; ``output(state)`` is the image. ``State`` is a pytree of
arrays that also holds its ``tx`` (as flax's ``TrainState`` does): hold it, save it
(``jaxnst.checkpoint``), ``vmap`` it, continue it later; ``k`` steps and then ``m`` give
what ``k + m`` steps give.

``jaxnst.transfer`` builds the Gatys objective as such a ``loss_fn``; ``blocks`` is the one
host loop of the package, a generator over calls of ``run``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax
from jax.tree_util import Partial

from jaxnst.config import Config
from jaxnst.errors import JaxnstError

# Why a run stopped (``State.stop``); STOP_STEPS: it did not, and runs until its steps are done.
STOP_STEPS, STOP_TOL, STOP_NONFINITE = 0, 1, 2
STOP_REASONS = {
    STOP_STEPS: "reached the requested number of steps",
    STOP_TOL: "converged: the image changed by less than --tol per step",
    STOP_NONFINITE: "the loss or the image became NaN or infinite; kept the image before that step (try a lower --lr)",
}


class State(struct.PyTreeNode):
    """Everything a run has that the next step needs. Arrays, and two static fields: ``tx`` and ``clip``."""

    image: jax.Array  # (..., H, W, C) the iterate; within [0, 1] with ``clip`` (a line search clips only ``output``)
    opt_state: optax.OptState  # ``tx``'s state: Adam's moments and learning rate, L-BFGS' memory...
    step: jax.Array  # int32, steps taken
    loss: jax.Array  # float32, the loss at the input of the last step taken (NaN before the first)
    stop: jax.Array  # int32, a key of STOP_REASONS; ``run`` takes no step once it is not STOP_STEPS
    # The exponential moving average of the iterates (Adam's bias correction; ``output``):
    average: jax.Array  # like ``image``: a <- d a + (1 - d) x after each step, from (1 - d) x_0
    average_weight: jax.Array  # float32, the same average of 1s: ``output`` is ``average / average_weight``
    ema_decay: jax.Array  # float32, d; 0: the average is the last image
    change: jax.Array  # float32, RMS change of ``output`` per step, averaged over ~10 steps (``CHANGE_DECAY``)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    clip: bool = struct.field(pytree_node=False, default=True)  # project the image to [0, 1] after each update


def init(image: jax.Array, tx: optax.GradientTransformation, *, ema: float | jax.Array = 0.0, clip: bool = True):
    """A run of ``tx`` starting at ``image``.

    ``ema`` is the decay ``d`` of the moving average of the iterates that ``output`` returns
    (crowsonkb's ``--avg-decay``): 0 returns the last iterate, 0.99 averages about the last 100,
    bias-corrected as Adam's moments are. ``clip`` keeps the pixels in [0, 1] after every update
    (not between the steps of a line search, such as ``optax.lbfgs``'s). The state holds copies of
    ``image``, so a donating ``run`` never frees the caller's array.
    """
    image = jnp.array(image, jnp.float32, copy=True)
    d = jnp.asarray(ema, jnp.float32)
    return State(image, _fresh(tx, image), jnp.int32(0), jnp.float32(jnp.nan), jnp.int32(STOP_STEPS),
                 (1 - d) * image, 1 - d, d, jnp.float32(0), tx, clip)  # fmt: skip


def _fresh(tx: optax.GradientTransformation, image: jax.Array) -> optax.OptState:
    # Copies: leaves an optimiser's init shares with the image may not be donated with it.
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tx.init(image))


def _linesearch(opt_state) -> bool:
    """Whether ``opt_state`` holds a line search (``optax.lbfgs``): its ``update`` takes value, grad and value_fn."""
    kinds = (optax.ScaleByZoomLinesearchState, optax.ScaleByBacktrackingLinesearchState)
    return any(isinstance(s, kinds) for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, kinds)))


def _split(out) -> tuple[jax.Array, Any]:
    """``(loss, aux)`` from what a loss function returned: a pair, or the loss alone (aux None)."""
    return (out[0], out[1]) if isinstance(out, (tuple, list)) else (out, None)


def step(state: State, loss_fn: Callable) -> tuple[jax.Array, optax.OptState, jax.Array, Any]:
    """One update of ``state.tx`` on ``loss_fn``: ``(image, opt_state, loss, aux)``, the loss and
    aux at the image it was given. A line search's value and gradient are reused, so its step
    costs no extra gradient; an ``aux`` it returns costs one more forward pass (XLA drops it when
    there is none)."""
    x, o = state.image, state.opt_state
    if _linesearch(o):
        value_fn = lambda y: _split(loss_fn(y))[0]  # noqa: E731
        loss, grad = optax.value_and_grad_from_state(value_fn)(x, state=o)
        updates, o = state.tx.update(grad, o, x, value=loss, grad=grad, value_fn=value_fn)
        aux = _split(loss_fn(x))[1]
        return optax.apply_updates(x, updates), o, loss, aux
    (loss, aux), grad = jax.value_and_grad(lambda y: _split(loss_fn(y)), has_aux=True)(x)
    updates, o = state.tx.update(grad, o, x)
    x = optax.apply_updates(x, updates)
    return (jnp.clip(x, 0.0, 1.0) if state.clip else x), o, loss, aux


# ``State.change`` is an exponential moving average of the output's change per step with this decay
# (about the last 10 steps); ``tol`` is not tested before a scale's ``CHANGE_STEPS``-th step.
CHANGE_DECAY, CHANGE_STEPS = 0.9, 10


def run_steps(state: State, loss_fn: Callable, n, tol=0.0) -> tuple[State, Any]:
    """``run`` without ``jit``: for ``vmap`` and ``lower`` (``jaxnst.batch``, ``jaxnst.memory``)."""
    until = state.step + n
    aux0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), _split(jax.eval_shape(loss_fn, state.image))[1])

    def cond(carry):
        s, _ = carry
        return (s.step < until) & (s.stop == STOP_STEPS)

    def body(carry):
        s, old_aux = carry
        x, o, loss, aux = step(s, loss_fn)
        bad = ~jnp.isfinite(loss) | ~jnp.all(jnp.isfinite(x))
        d = s.ema_decay
        average, weight = d * s.average + (1 - d) * x, d * s.average_weight + (1 - d)
        moved = jnp.sqrt(jnp.mean(jnp.square(average / weight - s.average / s.average_weight)))
        change = jnp.where(s.step == 0, moved, CHANGE_DECAY * s.change + (1 - CHANGE_DECAY) * moved)
        converged = (tol > 0) & (s.step + 1 >= CHANGE_STEPS) & (change < tol)
        stop = jnp.where(bad, STOP_NONFINITE, jnp.where(converged, STOP_TOL, STOP_STEPS))
        stop = stop.astype(jnp.int32)  # not weakly typed: the carry keeps its type, and the next call its program
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(bad, b, a), new, old)  # noqa: E731
        new = s.replace(image=keep(x, s.image), opt_state=keep(o, s.opt_state), step=s.step + jnp.where(bad, 0, 1),
                        loss=keep(loss, s.loss), stop=stop, average=keep(average, s.average),
                        average_weight=keep(weight, s.average_weight), change=keep(change, s.change))  # fmt: skip
        return new, keep(aux, old_aux)

    return lax.while_loop(cond, body, (state, aux0))


def _pytree(loss_fn: Callable) -> Partial:
    # A ``Partial`` is a pytree: its arrays are arguments of the compiled program, not constants in it.
    return loss_fn if isinstance(loss_fn, Partial) else Partial(loss_fn)


@functools.cache
def compiled_run(donate: bool = False):
    """``run_steps`` under ``jax.jit`` (donating the state with ``donate``): what ``run`` calls."""
    return jax.jit(run_steps, donate_argnums=0 if donate else ())


def run(state: State, loss_fn: Callable, n=1, *, tol=0.0, donate: bool = False) -> tuple[State, Any]:
    """Up to ``n`` more steps of ``state.tx`` on ``loss_fn(image) -> (loss, aux)`` (or just the loss),
    in one compiled ``lax.while_loop``; returns the new state and the ``aux`` at the input of the
    last step taken (zeros before any step).

    Stops early when the image has stopped changing: when ``state.change``, the RMS change of
    ``output`` per step averaged over about the last 10 steps, falls below ``tol`` (if ``tol > 0``;
    from the 10th step on). Or when the loss or the updated image is not finite: that update is
    not taken. ``state.stop`` says why (``STOP_REASONS``). ``n`` and ``tol`` are arrays to the
    program, so every value runs the same compiled code. ``loss_fn`` is best a
    ``jax.tree_util.Partial`` over its arrays (as ``jaxnst.transfer.objective_fn`` returns): then
    new arrays of the same shapes reuse the compiled program, where a new closure compiles again.

    With ``donate=True`` the state's buffers are reused for the result (no copy of the image and
    the optimiser's state per call): the ``state`` passed in is then deleted and must not be read
    again. ``jaxnst.stylize`` donates; the default keeps it.
    """
    return compiled_run(donate)(state, _pytree(loss_fn), jnp.asarray(n, jnp.int32), jnp.asarray(tol, jnp.float32))


def output(state: State) -> jax.Array:
    """The run's image: the bias-corrected moving average of its iterates (``init``'s ``ema``),
    which is the last iterate when ``ema`` is 0. Works on a vmapped state too."""
    w = state.average_weight
    return state.average / w.reshape(w.shape + (1,) * (state.average.ndim - w.ndim))


# The fields of optax states that hold running means of squares: they are resized bilinearly and kept >= 0.
SECOND_MOMENTS = ("nu", "nu_max", "sum_of_squares", "e_g", "e_x", "grad_sum_of_squares")


def _resize(x: jax.Array, hw: tuple[int, int], method: str) -> jax.Array:
    return jax.image.resize(x, (*x.shape[:-3], *hw, x.shape[-1]), method)


def rescale(state: State, hw: tuple[int, int]) -> State:
    """``state`` carried to images of ``hw`` = (height, width), for the next scale of a run.

    The image is ``output(state)`` resized (bicubic), clipped to [0, 1] with ``state.clip``. Of
    the optimiser's state, every leaf of the image's shape is resized too: bicubic, except the
    running means of squares (``SECOND_MOMENTS``: Adam's ``nu``...), bilinear and kept >= 0, as
    crowsonkb's ``scale_adam``; every other leaf (step counts, learning rates) is kept. A state
    that holds a history of images or a cached gradient (``optax.lbfgs``'s memory and line
    search) starts again from ``tx.init``. The average, step count, loss, change and stop start again.
    """
    image = _resize(output(state), hw, "cubic")
    image = jnp.clip(image, 0.0, 1.0) if state.clip else image
    shape = state.image.shape
    leaves = jax.tree.leaves(state.opt_state)
    if _linesearch(state.opt_state) or any(a.ndim > len(shape) and a.shape[-len(shape) :] == shape for a in leaves):
        opt_state = _fresh(state.tx, image)
    else:

        def move(path, a):
            if a.shape != shape:
                return a
            if getattr(path[-1], "name", None) in SECOND_MOMENTS:
                return jnp.maximum(_resize(a, hw, "linear"), 0.0)
            return _resize(a, hw, "cubic")

        opt_state = jax.tree_util.tree_map_with_path(move, state.opt_state)
    d = state.ema_decay
    return state.replace(image=image, opt_state=opt_state, step=jnp.zeros_like(state.step),
                         loss=jnp.full_like(state.loss, jnp.nan), stop=jnp.zeros_like(state.stop),
                         average=(1 - d) * image, average_weight=1 - d,
                         change=jnp.zeros_like(state.change))  # fmt: skip


@functools.cache
def optimizer(name: str) -> optax.GradientTransformation:
    """The optimiser a ``Config.optimizer`` names: ``'adam'``, with its learning rate held in its
    state (``optax.inject_hyperparams``: set it with ``with_learning_rate``, an array per batch
    item if you like), or ``'lbfgs'`` (``optax.lbfgs``: zoom line search, memory 10, as minFunc).
    Cached: one object per name, so states of equal shapes share one compiled program."""
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=Config.lr)
    if name == "lbfgs":
        return optax.lbfgs()
    raise JaxnstError(f"optimizer {name!r}: use adam or lbfgs", "optimizer")


def with_learning_rate(state: State, learning_rate) -> State:
    """``state`` with the learning rate of its ``optax.inject_hyperparams`` optimiser set (optax's
    ``opt_state.hyperparams['learning_rate']``, without mutating); unchanged if it has none."""
    is_inject = lambda s: isinstance(getattr(s, "hyperparams", None), dict)  # noqa: E731  (optax's Inject*State)

    def put(s):
        if not is_inject(s) or "learning_rate" not in s.hyperparams:
            return s
        old = s.hyperparams["learning_rate"]
        return s._replace(hyperparams={**s.hyperparams, "learning_rate": jnp.asarray(learning_rate, old.dtype)})

    return state.replace(opt_state=jax.tree.map(put, state.opt_state, is_leaf=is_inject))


class Block(NamedTuple):
    """The state after a block of steps, with its counters already on the host."""

    state: State
    step: np.ndarray  # steps taken (one per item for a vmapped state)
    stop: np.ndarray  # STOP_* codes
    loss: np.ndarray
    done: bool  # no item will take another step


def blocks(
    run_n: Callable[[State, Any, Any], tuple[State, Any]],
    state: State,
    steps,
    tol,
    every: int,
    *,
    put: Callable = jnp.asarray,
    get: Callable = np.asarray,
) -> Iterator[Block]:
    """Runs ``state`` until each item has taken ``steps`` steps or stopped, yielding a ``Block``
    after each call of ``run_n(state, n, tol) -> (state, aux)`` (e.g. ``run`` with its loss function
    bound). The first call takes one step, so the first block arrives as soon as the program is
    compiled; the others end at multiples of ``every`` (and at ``steps``). Nothing is yielded when
    nothing is left to do.

    ``steps`` is an int, or one per item (an array like ``state.step``) for a vmapped
    ``run_n``; ``put`` places the per-item step counts it passes and ``get`` fetches
    counters to the host (multi-host meshes need both).
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
        state, _ = run_n(state, put(n), tol)
        first = False
        step, stop, loss = get(state.step), get(state.stop), get(state.loss)
        yield Block(state, step, stop, loss, not ((stop == STOP_STEPS) & (step < steps)).any())
