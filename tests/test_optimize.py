import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnst
from jaxnst import engine
from jaxnst.engine import STOP_NONFINITE, STOP_STEPS, STOP_TOL
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective, objective_fn
from jaxnst.transfer import start
from jaxnst.vgg import Network


def quad(x, target):
    return jnp.sum((x - target) ** 2)


def test_adam_step_matches_hand_written_adam(rng):
    x0 = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
    t = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    state = engine.init(x0, optax.adam(lr), clip=False)
    m = v = np.zeros_like(x0, np.float64)
    xr = x0.astype(np.float64)
    for k in range(1, 4):
        state, aux = engine.run(state, lambda x: (quad(x, t), {"twice": 2 * quad(x, t)}))
        g = 2 * (xr - t)
        np.testing.assert_allclose(state.loss, np.sum((xr - t) ** 2), rtol=1e-5)
        np.testing.assert_allclose(aux["twice"], 2 * np.sum((xr - t) ** 2), rtol=1e-5)  # aux at the step's input
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        xr = xr - lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps)
        np.testing.assert_allclose(state.image, xr, rtol=1e-5, atol=1e-6)


def test_clip_keeps_pixels_in_range():
    target = jnp.full((1, 2, 2, 3), 3.0)
    state, aux = engine.run(engine.init(jnp.full((1, 2, 2, 3), 0.5), optax.sgd(10.0)), lambda x: quad(x, target))
    np.testing.assert_array_equal(state.image, 1.0)
    assert aux is None  # a loss function may return the loss alone
    free, _ = engine.run(
        engine.init(jnp.full((1, 2, 2, 3), 0.5), optax.sgd(10.0), clip=False), lambda x: quad(x, target)
    )
    np.testing.assert_allclose(free.image, 0.5 - 10 * 2 * (0.5 - 3.0))


def run_quad(loss, opt, x0, n, tol, target=None):
    return engine.run(engine.init(x0, opt, clip=False), lambda x: loss(x, target), n, tol=tol)[0]


def test_run_equals_single_steps(rng):
    t = jnp.asarray(rng.uniform(size=(1, 3, 3, 3)), jnp.float32)
    loss_fn = jax.tree_util.Partial(quad, target=t)
    state = engine.init(jnp.zeros((1, 3, 3, 3)), optax.adam(0.05))
    single = state
    for _ in range(7):
        single, _ = engine.run(single, loss_fn, 1)
    out, _ = engine.run(state, loss_fn, 7)
    assert int(out.step) == 7 and int(out.stop) == STOP_STEPS
    np.testing.assert_allclose(out.image, single.image, rtol=1e-6)
    np.testing.assert_allclose(out.loss, single.loss, rtol=1e-6)
    assert int(state.step) == 0  # not donated: the state passed in is still there
    donated, _ = engine.run(state, loss_fn, 7, donate=True)
    np.testing.assert_array_equal(donated.image, out.image)
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(state.image)


def change_reference(x0: float, target: float, lr: float, ema: float, tol: float, n: int):
    """The stop rule by hand: SGD on (x - target)^2 from x0 (every pixel alike), the output the
    bias-corrected average of the iterates, ``change`` the moving average (decay 0.9, the first step
    taken as it is) of the output's change per step; the scale ends at the first step from the 10th on
    where it is below ``tol``. Returns (steps taken, change, output)."""
    x, avg, weight, change = x0, (1 - ema) * x0, 1 - ema, 0.0
    for k in range(1, n + 1):
        x = x - lr * 2 * (x - target)
        new_avg, new_weight = ema * avg + (1 - ema) * x, ema * weight + (1 - ema)
        moved = abs(new_avg / new_weight - avg / weight)
        change = moved if k == 1 else 0.9 * change + 0.1 * moved
        avg, weight = new_avg, new_weight
        if k >= 10 and change < tol:
            return k, change, avg / weight
    return n, change, avg / weight


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_run_stops_when_the_image_stops_changing(ema):
    """``tol`` ends a run once the output moves less than ``tol`` per step (smoothed), never before the 10th
    step; without ``tol``, or with a ``tol`` it never reaches, it takes every step; the rule carries across
    calls, and a stopped state takes no more steps."""
    x0 = jnp.zeros((1, 2, 2, 1))
    loss_fn = jax.tree_util.Partial(quad, target=jnp.float32(1.0))  # one loss function: one compiled program
    run = lambda n, tol, state=None: engine.run(  # noqa: E731
        state or engine.init(x0, optax.sgd(0.1), ema=ema, clip=False), loss_fn, n, tol=tol
    )[0]
    for tol in (1e-3, 0.05, 10.0):
        k, change, out = change_reference(0.0, 1.0, 0.1, ema, tol, 1000)
        assert k < 1000 and (k > 10 or tol == 10.0)
        state = run(1000, tol)
        assert int(state.stop) == STOP_TOL and int(state.step) == k == max(10, k)
        np.testing.assert_allclose(float(state.change), change, rtol=1e-4)
        np.testing.assert_allclose(engine.output(state), np.full(x0.shape, out), rtol=1e-5)
        # In pieces of 3 steps, the same steps.
        state = run(3, tol)
        while int(state.stop) == STOP_STEPS:
            state = run(3, tol, state)
        assert int(state.stop) == STOP_TOL and int(state.step) == k
        assert int(run(5, tol, state).step) == k
    state = run(300, 0.0)
    assert int(state.stop) == STOP_STEPS and int(state.step) == 300


def test_run_stops_on_nonfinite():
    x0 = jnp.zeros((1, 2, 2, 1))
    # Each step adds 0.1 to 4 pixels; the loss is NaN once their sum exceeds 0.5.
    nan_loss = lambda x, t: -jnp.sum(x) * jnp.where(jnp.sum(x) > 0.5, jnp.nan, 1.0)
    out = run_quad(nan_loss, optax.sgd(0.1), x0, 100, 0.0)
    assert int(out.stop) == STOP_NONFINITE and int(out.step) == 2
    np.testing.assert_allclose(float(jnp.sum(out.image)), 0.8, rtol=1e-6)  # the update from it was not taken
    np.testing.assert_allclose(float(out.loss), -0.4, rtol=1e-6)  # at the input of the last step taken
    # A stopped state takes no more steps.
    assert int(engine.run(out, lambda x: nan_loss(x, None), 5)[0].step) == 2
    # A finite loss with an infinite gradient: the NaN image is never accepted.
    sqrt_loss = lambda x, t: jnp.sum(jnp.sqrt(x))
    out = run_quad(sqrt_loss, optax.sgd(0.1), x0, 100, 0.0)
    assert int(out.stop) == STOP_NONFINITE and int(out.step) == 0
    np.testing.assert_array_equal(out.image, x0)


def test_any_optax_chain_and_a_vmapped_batch(rng):
    """The engine takes a transformation jaxnst does not define, and runs under ``vmap``: item i of a
    batched run equals the single run of item i."""
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.1, momentum=0.9))
    targets = jnp.asarray(rng.uniform(size=(3, 1, 4, 4, 3)), jnp.float32)
    x0 = jnp.full((1, 4, 4, 3), 0.5)

    def one(t):
        state, aux = engine.run_steps(engine.init(x0, tx), jax.tree_util.Partial(quad, target=t), 6)
        return state.image, state.loss

    images, losses = jax.jit(jax.vmap(one))(targets)
    for i in range(3):
        single, _ = engine.run(engine.init(x0, tx), jax.tree_util.Partial(quad, target=targets[i]), 6)
        np.testing.assert_allclose(images[i], single.image, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(losses[i], single.loss, rtol=1e-6)
    # Hand-computed first step: the gradient 2(x - t) clipped to norm 0.5, times 0.1.
    g = 2 * (np.asarray(x0) - np.asarray(targets[0]))
    g = g * min(1.0, 0.5 / np.linalg.norm(g))
    first, _ = engine.run(engine.init(x0, tx), jax.tree_util.Partial(quad, target=targets[0]), 1)
    np.testing.assert_allclose(first.image, np.clip(x0 - 0.1 * g, 0, 1), rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
@pytest.mark.slow
def test_state_continued_equals_uninterrupted_run(vgg19, rng, optimizer):
    """k steps, the State held (here: copied to NumPy and back, as a checkpoint would be), then m
    more, give what k + m uninterrupted steps give; tol keeps counting across the break."""
    cfg = jaxnst.Config(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"), style_weight=1e3,
                        tv_weight=1.0, optimizer=optimizer, lr=0.05)  # fmt: skip
    c = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    s = jnp.asarray(rng.uniform(size=(1, 16, 20, 3)), jnp.float32)
    spec = LossSpec.from_config(cfg)
    loss_fn = objective_fn(vgg19, make_targets(vgg19, c, [s], spec), LossWeights.from_config(cfg), spec)
    whole, _ = engine.run(start(c, cfg), loss_fn, 7)
    part, _ = engine.run(start(c, cfg), loss_fn, 3)
    held = jax.tree.map(np.array, part)
    assert int(held.step) == 3
    cont, _ = engine.run(jax.tree.map(jnp.asarray, held), loss_fn, 4)
    assert int(cont.step) == int(whole.step) == 7
    for a, b in zip(jax.tree.leaves(cont), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(held.image, whole.image)  # the steps did something


@pytest.mark.slow
def test_lbfgs_decreases_loss(vgg19, rng):
    c = rng.uniform(size=(24, 24, 3)).astype(np.float32)
    s = rng.uniform(size=(24, 32, 3)).astype(np.float32)
    cfg = jaxnst.Config(steps=6, optimizer="lbfgs", content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    seen = []
    out = jaxnst.stylize(c, [s], vgg19, cfg, callback=seen.append, every=3)
    assert [p.step for p in seen] == [1, 3, 6] and seen[-1].done  # a first step alone, then every 3
    assert seen[-1].loss < seen[0].loss
    assert out.shape == (24, 24, 3) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_no_recompilation_across_blocks_and_calls(vgg19, rng):
    cfg = jaxnst.Config(steps=7, content_layers=("relu2_1",), style_layers=("relu1_1",), style_weight=1e3)
    c = rng.uniform(size=(16, 16, 3)).astype(np.float32)
    s = rng.uniform(size=(16, 16, 3)).astype(np.float32)
    run = engine.compiled_run(True)
    before = run._cache_size()
    jaxnst.stylize(c, [s], vgg19, cfg, every=3)  # blocks of 3, 3, 1 steps
    after_first = run._cache_size()
    jaxnst.stylize(
        c, [s], vgg19, jaxnst.Config(**{**cfg.__dict__, "steps": 5, "lr": 0.1, "style_weight": 5.0}), every=2
    )
    assert after_first - before == 1
    assert run._cache_size() == after_first


@pytest.mark.parametrize(("precision", "want"), [("fp32", "HIGHEST"), ("tf32", "HIGH")])
def test_precision_reaches_every_product_of_the_gradient(vgg19, precision, want):
    # JAX's default for float32 on GPUs is TF32; --precision fp32 must ask for float32 in every
    # convolution and dot of the step, the hand-written backward passes included.
    # conv2_2 is a Winograd layer
    # The Gram: W2 asks for float32 in its square roots and distance whatever the precision (jaxnst.sqrtm).
    spec = LossSpec(("relu2_2",), ("relu1_1", "relu2_2"), style_statistic="gram", network=Network(precision=precision))
    x = jnp.full((1, 16, 16, 3), 0.5)
    targets = make_targets(vgg19, x * 0.9, [x], spec)
    lw = LossWeights.from_config(jaxnst.Config(content_layers=spec.content_layers, style_layers=spec.style_layers))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda a: objective(a, vgg19, targets, lw, spec=spec)[0]))(x))
    products = len(re.findall(r"= (conv_general_dilated|dot_general)\[", jaxpr))
    found = re.findall(r"precision=\(?Precision\.(\w+)", jaxpr)
    assert products >= 2 * 4 + 2 and len(found) == products and set(found) == {want}, (products, found)
