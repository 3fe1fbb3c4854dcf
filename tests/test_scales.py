"""Coarse to fine: the scale schedule, carrying a run's state up a scale, the moving average of
the iterates, and the start images."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnst
from jaxnst import engine
from jaxnst.config import Config, scale_schedule
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.transfer import initial_image, start

LAYERS = {"content_layers": ("relu2_1",), "style_layers": ("relu1_1", "relu2_1")}


def test_scale_schedule_is_as_documented():
    assert scale_schedule(Config()) == [(128, 60), (181, 20), (256, 20), (362, 20), (512, 100)]  # the default
    assert scale_schedule(Config(size=512, min_size=128, initial_steps=1000, middle_steps=None, steps=500)) == [
        (128, 1000), (181, 500), (256, 500), (362, 500), (512, 500)
    ]  # fmt: skip
    # Sides below min_size are left out; the first and middle scales take --steps when theirs are None.
    assert scale_schedule(Config(size=500, min_size=128, steps=7, initial_steps=None, middle_steps=None)) == [
        (177, 7), (250, 7), (354, 7), (500, 7)
    ]  # fmt: skip
    # middle_steps: the scales between the first and the last; None: --steps. Without min_size: --steps.
    assert scale_schedule(Config(size=362, min_size=128, initial_steps=5, middle_steps=3, steps=8)) == [
        (128, 5), (181, 3), (256, 3), (362, 8)
    ]  # fmt: skip
    assert scale_schedule(Config(size=512, steps=9, min_size=None, middle_steps=4)) == [(512, 9)]
    assert scale_schedule(Config(size=64, min_size=128, initial_steps=3, steps=50)) == [(64, 50)]  # min_size >= size


def problem_for(vgg19, rng, cfg, hw=(16, 16)):
    c = jnp.asarray(rng.uniform(size=(1, *hw, 3)), jnp.float32)
    s = jnp.asarray(rng.uniform(size=(1, 16, 20, 3)), jnp.float32)
    spec = LossSpec.from_config(cfg)
    return c, objective_fn(vgg19, make_targets(vgg19, c, [s], spec), LossWeights.from_config(cfg), spec), spec


@pytest.mark.slow
def test_output_is_the_bias_corrected_moving_average_of_the_iterates(vgg19, rng):
    cfg = Config(style_weight=1e3, lr=0.05, **LAYERS)
    c, loss_fn, spec = problem_for(vgg19, rng, cfg)
    d = 0.8
    state = start(c, dataclasses.replace(cfg, ema=d))
    np.testing.assert_allclose(engine.output(state), c, rtol=1e-6)  # before any step: the start image
    iterates = [np.asarray(c, np.float64)]
    for _ in range(5):
        state, _ = engine.run(state, loss_fn, 1)
        iterates.append(np.asarray(state.image, np.float64))
    w = d ** np.arange(len(iterates))[::-1]  # the newest weighs 1, the one before d, ...
    want = sum(wi * x for wi, x in zip(w, iterates, strict=True)) / w.sum()
    np.testing.assert_allclose(engine.output(state), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, iterates[-1], atol=1e-4)  # the average is not the last iterate
    plain, _ = engine.run(start(c, dataclasses.replace(cfg, ema=0.0)), loss_fn, 5)
    np.testing.assert_array_equal(engine.output(plain), plain.image)  # decay 0: the last iterate, exactly


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
@pytest.mark.slow
def test_rescale_carries_the_state_up(vgg19, rng, optimizer):
    cfg = Config(style_weight=1e3, lr=0.05, optimizer=optimizer, **LAYERS)
    c, loss_fn, spec = problem_for(vgg19, rng, cfg)
    state, _ = engine.run(start(c, dataclasses.replace(cfg, ema=0.5)), loss_fn, 3)
    up = engine.rescale(state, (22, 23))
    assert up.image.shape == (1, 22, 23, 3) and int(up.step) == 0 and int(up.stop) == 0 and np.isnan(up.loss)
    want = jnp.clip(jax.image.resize(engine.output(state), (1, 22, 23, 3), "cubic"), 0, 1)
    np.testing.assert_allclose(up.image, want, rtol=1e-6)
    np.testing.assert_allclose(engine.output(up), up.image, rtol=1e-6)  # the average starts again
    for leaf in jax.tree.leaves(up.opt_state):  # nothing of the old shape is left
        assert leaf.shape[1:3] != (16, 16)
    if optimizer == "adam":
        adam = lambda s: s.opt_state.inner_state[0]  # noqa: E731
        assert int(adam(up).count) == 3 and float(up.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.05)
        assert float(adam(up).nu.min()) >= 0
        same = engine.rescale(state, (16, 16))  # the same shape: the moments as they were
        np.testing.assert_allclose(adam(same).mu, adam(state).mu, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(adam(same).nu, adam(state).nu, rtol=1e-5, atol=1e-12)
    # A step at the new scale runs.
    c2, loss_fn2, _ = problem_for(vgg19, rng, cfg, (22, 23))
    after, _ = engine.run(up, loss_fn2, 2)
    assert int(after.step) == 2 and np.isfinite(float(after.loss))


def multiscale_config(**kw):
    base = {"size": 32, "min_size": 16, "steps": 3, "initial_steps": 4, "middle_steps": None, "tol": 0.0}
    return Config(style_weight=1e3, lr=0.05, **LAYERS, **{**base, **kw})


@pytest.mark.slow
def test_multiscale_runs_each_scale_and_compiles_each_shape_once(vgg19, rng):
    cfg = multiscale_config(ema=0.5)
    c = rng.uniform(size=(32, 24, 3)).astype(np.float32)
    s = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    seen = []
    jaxnst.stylize(c, [s], vgg19, cfg, callback=seen.append, every=2)
    got = [(p.scale, p.step, p.steps, p.image.shape[:2]) for p in seen]
    assert got == [
        (0, 1, 4, (16, 12)), (0, 2, 4, (16, 12)), (0, 4, 4, (16, 12)),
        (1, 1, 3, (23, 17)), (1, 2, 3, (23, 17)), (1, 3, 3, (23, 17)),
        (2, 1, 3, (32, 24)), (2, 2, 3, (32, 24)), (2, 3, 3, (32, 24)),
    ]  # fmt: skip
    assert [p.done for p in seen] == [False] * 8 + [True] and {p.scales for p in seen} == {3}
    sizes = engine.compiled_run(True)._cache_size()
    again = []
    out = jaxnst.stylize(c, [s], vgg19, cfg, callback=again.append, every=2)  # repeated shapes: no compile
    assert engine.compiled_run(True)._cache_size() == sizes
    np.testing.assert_array_equal(out, seen[-1].image)  # and the same result


@pytest.mark.slow
def test_multiscale_resumed_mid_scale_equals_uninterrupted(vgg19, rng):
    cfg = multiscale_config(ema=0.5)
    c = rng.uniform(size=(32, 24, 3)).astype(np.float32)
    s = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    whole = jaxnst.stylize(c, [s], vgg19, cfg, every=2)
    held = {}

    class Stop(Exception):
        pass

    def callback(p):
        if p.scale == 1 and p.step == 2:
            held["state"] = jax.tree.map(np.array, p.state)  # as a checkpoint keeps it
            raise Stop

    with pytest.raises(Stop):
        jaxnst.stylize(c, [s], vgg19, cfg, callback=callback, every=2)
    resumed = jaxnst.stylize(c, [s], vgg19, cfg, every=2, state=jax.tree.map(jnp.asarray, held["state"]))
    np.testing.assert_allclose(resumed, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tol_ends_each_scale_when_its_image_stops_changing(vgg19, rng):
    TOL = 0.003  # noqa: N806
    """The stopping rule, whole runs: a tol the image reaches ends every scale early (from its 10th step,
    each scale counted afresh); one it never reaches, or none, leaves every scale its ceiling; a run
    stopped mid-scale and resumed from its state takes the same steps to the same pixels."""
    c = rng.uniform(size=(32, 24, 3)).astype(np.float32)
    s = rng.uniform(size=(32, 32, 3)).astype(np.float32)

    def run(tol, **kw):
        ends = {}  # each scale's last report: steps, stop, change (the state's buffers are reused: read them now)
        cfg = multiscale_config(ema=0.5, initial_steps=60, middle_steps=40, steps=50, tol=tol)
        record = lambda p: ends.update({p.scale: (p.step, int(p.state.stop), float(p.state.change))})  # noqa: E731
        out = jaxnst.stylize(c, [s], vgg19, cfg, callback=record, every=5, **kw)
        return out, [ends[k][0] for k in sorted(ends)], [ends[k][1:] for k in sorted(ends)]

    _, full, ends = run(0.0)
    assert full == [60, 40, 50] and {stop for stop, _ in ends} == {engine.STOP_STEPS}
    assert run(1e-9)[1] == full
    # A tol between the scales' smallest and largest changes ends some scales early and not others.
    out, early, ends = run(TOL)
    assert all(10 <= k <= n for k, n in zip(early, full, strict=True)) and early != full
    assert [stop == engine.STOP_TOL for stop, _ in ends] == [k < n for k, n in zip(early, full, strict=True)]
    assert all(change < TOL for stop, change in ends if stop == engine.STOP_TOL)
    held = {}

    class Stop(Exception):
        pass

    def callback(p):
        if p.scale == 1 and p.step == 5:
            held["state"] = jax.tree.map(np.array, p.state)
            raise Stop

    cfg = multiscale_config(ema=0.5, initial_steps=60, middle_steps=40, steps=50, tol=TOL)
    with pytest.raises(Stop):
        jaxnst.stylize(c, [s], vgg19, cfg, callback=callback, every=5)
    resumed, steps, _ = run(TOL, state=jax.tree.map(jnp.asarray, held["state"]))
    assert steps == early[1:]
    np.testing.assert_allclose(resumed, out, rtol=1e-5, atol=1e-6)


def test_a_content_too_small_at_the_first_scale_names_min_size(vgg19):
    cfg = Config(size=64, min_size=16, content_layers=("relu4_2",), style_layers=("relu5_1",))
    with pytest.raises(jaxnst.JaxnstError, match="at the first scale is 16x10 px: .* larger min_size") as e:
        jaxnst.stylize(np.zeros((40, 64, 3)), [np.zeros((64, 64, 3))], vgg19, cfg)
    assert e.value.field == "min_size"


@pytest.mark.slow
def test_start_images(rng):
    content = jnp.asarray(rng.uniform(size=(1, 40, 30, 3)), jnp.float32)
    style = jnp.asarray(rng.uniform(size=(1, 20, 20, 3)) * [0.2, 0.5, 0.3] + [0.1, 0.2, 0.6], jnp.float32)
    x = lambda init: np.asarray(initial_image(Config(init=init), content, [style]))  # noqa: E731
    gray = x("gray")
    assert gray.shape == content.shape and gray.min() >= 0.5 and gray.max() <= 0.5 + 1 / 255
    normal = x("normal")
    assert normal.min() >= 0 and normal.max() <= 1 and abs(normal.mean() - 0.5) < 0.02
    stats = x("style-stats")
    np.testing.assert_allclose(stats.mean(axis=(0, 1, 2)), np.asarray(style).mean(axis=(0, 1, 2)), atol=0.02)
    np.testing.assert_allclose(stats.std(axis=(0, 1, 2)), np.asarray(style).std(axis=(0, 1, 2)), rtol=0.1)
    assert stats.min() >= 0 and stats.max() <= 1
    np.testing.assert_array_equal(x("normal"), normal)  # seeded


def test_style_layer_ratio_and_presets():
    from jaxnst.config import PRESETS, preset, style_layer_weights

    assert style_layer_weights(Config(style_layer_ratio=4.0)) == (256.0, 64.0, 16.0, 4.0, 1.0)
    assert style_layer_weights(Config(style_layers=("relu2_1", "relu4_1"), style_layer_ratio=2.0)) == (8.0, 2.0)
    assert style_layer_weights(Config(style_layer_ratio=4.0, style_layer_weights=(1, 2, 3, 4, 5))) == (1, 2, 3, 4, 5)
    g = preset("gatys", size=256)
    assert (g.size, g.min_size, g.style_statistic, g.style_weight, g.ema) == (256, None, "gram", 100.0, 0.0)
    assert scale_schedule(g) == [(256, 500)] and set(PRESETS["gatys"]) <= {f for f in Config.__dataclass_fields__}
    with pytest.raises(jaxnst.JaxnstError, match="unknown preset 'x': use one of draft, best, gatys, crowsonkb"):
        preset("x")
    # best: the default until issue 24, every scale to its count; draft: fewer steps than the default at every scale.
    best = preset("best")
    assert scale_schedule(best) == [(128, 320), (181, 160), (256, 160), (362, 160), (512, 160)]
    assert (best.ema, best.tol) == (0.99, 0.0)
    assert all(d < n for (_, d), (_, n) in zip(scale_schedule(preset("draft")), scale_schedule(Config()), strict=True))


def test_cli_preset_sets_defaults_and_flags_win():
    from jaxnst.cli.common import config_from_args
    from jaxnst.cli.stylize import build_parser

    args = build_parser().parse_args(["c.png", "s.png", "--preset", "gatys", "--style-weight", "7"])
    cfg = config_from_args(args)
    assert cfg.style_statistic == "gram" and cfg.min_size is None and cfg.style_weight == 7.0
    plain = config_from_args(build_parser().parse_args(["c.png", "s.png"]))
    assert plain == Config()


@pytest.mark.parametrize("name", ["adam", "chain", "lbfgs"])
@pytest.mark.slow
def test_rescale_any_optax_state(rng, name):
    """Leaves of the image's shape are resized (second moments bilinear and >= 0), other leaves kept;
    a state holding a history of images starts again from ``tx.init``."""
    tx = {"adam": optax.adam(0.1), "chain": optax.chain(optax.clip(1.0), optax.sgd(0.1, momentum=0.9)),
          "lbfgs": optax.lbfgs()}[name]  # fmt: skip
    t = jnp.asarray(rng.uniform(size=(1, 8, 6, 3)), jnp.float32)
    state, _ = engine.run(engine.init(jnp.full((1, 8, 6, 3), 0.5), tx), lambda x: jnp.sum((x - t) ** 4), 3)
    up = engine.rescale(state, (12, 9))
    assert up.image.shape == (1, 12, 9, 3) and up.tx is tx
    if name == "lbfgs":
        fresh = tx.init(up.image)
        for a, b in zip(jax.tree.leaves(up.opt_state), jax.tree.leaves(fresh), strict=True):
            np.testing.assert_array_equal(a, b)
        return
    old = {jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]}
    for path, a in jax.tree_util.tree_flatten_with_path(up.opt_state)[0]:
        key = jax.tree_util.keystr(path)
        if old[key].shape != state.image.shape:
            np.testing.assert_array_equal(a, old[key])  # counts kept
        elif key.endswith(".nu"):
            want = np.maximum(jax.image.resize(old[key], (1, 12, 9, 3), "linear"), 0)
            np.testing.assert_allclose(a, want, rtol=1e-6)
        else:
            np.testing.assert_allclose(a, jax.image.resize(old[key], (1, 12, 9, 3), "cubic"), rtol=1e-6, atol=1e-9)
    assert any(a.shape == (1, 12, 9, 3) for a in jax.tree.leaves(up.opt_state))  # momentum, mu/nu moved up
    after, _ = engine.run(up, lambda x: jnp.sum((x - 0.5) ** 2), 2)
    assert int(after.step) == 2


def test_scales_drives_any_problem_coarse_to_fine():
    """``transfer.scales`` on a toy objective: a block after each dispatch, one ``done`` at the very
    end, the steps of earlier scales in ``before``, and each scale's state carried up by ``rescale``."""
    from jaxnst import transfer

    hws = [(2, 3), (4, 6)]
    target = lambda k: jnp.full((1, *hws[k], 3), 0.25)  # noqa: E731
    stages = list(transfer.scales(
        None, [3, 5], 0.0, 2, problem=lambda k: (lambda x: jnp.sum((x - target(k)) ** 2)),
        init=lambda k, loss_fn: engine.init(jnp.zeros((1, *hws[k], 3)), optax.sgd(0.1)),
        rescale=lambda s, k: engine.rescale(s, hws[k]), run=lambda s, loss_fn, n, tol: engine.run(s, loss_fn, n),
    ))  # fmt: skip
    got = [(s.scale, int(s.block.step), int(np.asarray(s.before)), s.done) for s in stages]
    assert got == [(0, 1, 0, False), (0, 2, 0, False), (0, 3, 0, False),
                   (1, 1, 3, False), (1, 2, 3, False), (1, 4, 3, False), (1, 5, 3, True)]  # fmt: skip
    x = engine.output(stages[-1].block.state)
    assert x.shape == (1, 4, 6, 3)
    # Plain gradient descent on the quadratic: the error shrinks by 1 - 2 * 0.1 per step, 5 steps from
    # the coarse image carried up (3 steps from 0: 0.25 * (1 - 0.8 ** 3), bicubic of a constant).
    np.testing.assert_allclose(x, 0.25 - 0.25 * 0.8**8, rtol=1e-5)


@pytest.mark.slow
def test_a_nan_at_a_coarse_scale_ends_the_run_at_the_contents_shape(vgg19, rng):
    """A loss that overflows stops the whole run at once (no more scales), says why once, and the
    image returned still has the content's shape."""
    cfg = dataclasses.replace(multiscale_config(), style_weight=1e38, style_statistic="gram")
    c = rng.uniform(size=(32, 24, 3)).astype(np.float32)
    s = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    seen = []
    out = jaxnst.stylize(c, [s], vgg19, cfg, callback=seen.append)
    assert out.shape == (32, 24, 3) and np.isfinite(out).all()
    assert [p.done for p in seen] == [False] * (len(seen) - 1) + [True]
    assert seen[-1].scale == 0 and seen[-1].stop == engine.STOP_NONFINITE and "NaN" in seen[-1].reason
