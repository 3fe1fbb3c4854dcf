"""jaxnst.fast (the network, model files, painting) and jaxnst.train (photos, loss, steps) on tiny inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxnst
from jaxnst import fast, train
from jaxnst.errors import JaxnstError

# A truncated objective: two shallow style layers and one content layer keep the VGG small.
CFG = jaxnst.Config(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"), style_statistic="gram",
                    content_weight=1.0, style_weight=1e3, tv_weight=10.0, ops="lax")  # fmt: skip
NET = fast.TransformNet(width=4, blocks=1)


def photos_folder(tmp_path: Path, n: int = 5, rng=None) -> Path:
    rng = rng or np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k in range(n):
        h, w = rng.integers(20, 40, 2)
        where = folder / "sub" if k % 2 else folder
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(where / f"p{k}.png")
    return folder


def setup(vgg19, rng, batch=2, crop=16):
    style = jnp.asarray(rng.random((1, 20, 24, 3), np.float32))
    spec = train.loss_spec(CFG)
    target = train.style_targets(vgg19, [style], CFG)
    lw = jaxnst.LossWeights.from_config(CFG)
    photos = jnp.asarray(rng.random((batch, crop, crop, 3), np.float32))
    return style, spec, target, lw, photos


@pytest.mark.slow
def test_the_network_keeps_any_size(rng):
    params = fast.init_params(NET, jax.random.key(0))
    for hw in [(8, 8), (13, 21), (30, 17)]:
        out = NET.apply({"params": params}, jnp.asarray(rng.random((2, *hw, 3), np.float32)))
        assert out.shape == (2, *hw, 3)
        assert np.all(np.isfinite(out))
    model = fast.Model(NET, params, {})
    for hw in [(9, 70), (65, 64), (8, 8)]:
        painted = fast.stylize(model, rng.random((*hw, 3), np.float32))
        assert painted.shape == (*hw, 3) and float(painted.min()) >= 0 and float(painted.max()) <= 1
    with pytest.raises(JaxnstError, match="too small"):
        fast.stylize(model, np.zeros((4, 30, 3), np.float32))


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 4)])
@pytest.mark.slow
def test_upsampling_equals_doubling_then_a_3x3_convolution(rng, hw):
    """``_Up`` against the plain recipe in NumPy: nearest doubling, reflection padding, 3x3 convolution."""
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    up = fast._Up(5)
    params = up.init(jax.random.key(0), jnp.asarray(x))["params"]
    assert set(params) == {"conv", "norm"}  # the parameters a ``_Conv(5, 3)`` has: old model files load
    k = np.asarray(params["conv"]["kernel"], np.float64)
    doubled = np.pad(x.repeat(2, 1).repeat(2, 2), ((0, 0), (1, 1), (1, 1), (0, 0)), "reflect")
    h, w = 2 * hw[0], 2 * hw[1]
    conv = sum(np.einsum("nhwi,io->nhwo", doubled[:, dy : dy + h, dx : dx + w], k[dy, dx])
               for dy in range(3) for dx in range(3))  # fmt: skip
    mean, var = conv.mean((1, 2), keepdims=True), conv.var((1, 2), keepdims=True)
    want = np.maximum((conv - mean) / np.sqrt(var + 1e-5), 0)
    got = np.asarray(up.apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, atol=2e-5 * max(1, np.abs(want).max()))


@pytest.mark.slow
def test_padding_to_a_shared_size_would_change_the_painting(rng):
    """Why ``fast.stylize`` compiles per shape instead of padding images up to shared sizes: the network sees
    the padding (instance norm's statistics, and every pixel within its reach of the border)."""
    params = fast.init_params(NET, jax.random.key(1))
    img = jnp.asarray(rng.random((1, 60, 60, 3), np.float32))
    exact = fast.stylize(fast.Model(NET, params, {}), img[0])
    padded = fast.stylize(fast.Model(NET, params, {}), jnp.pad(img, ((0, 0), (0, 4), (0, 4), (0, 0)), "reflect")[0])
    assert float(np.abs(exact - padded[:60, :60]).max()) > 0.02


@pytest.mark.slow
def test_photo_loss_is_the_objective_of_each_painting(vgg19, rng):
    """The training loss equals jaxnst's objective built independently for each photo (its own content
    target through ``make_targets``), averaged; and so do their gradients with respect to the network."""
    style, spec, target, lw, photos = setup(vgg19, rng)
    params = fast.init_params(NET, jax.random.key(0))

    def independent(params):
        painted = NET.apply({"params": params}, photos)
        total = 0.0
        for k in range(photos.shape[0]):
            t = jaxnst.make_targets(vgg19, photos[k : k + 1], [style], spec)
            total = total + jaxnst.objective_fn(vgg19, t, lw, spec)(painted[k : k + 1])[0]
        return total / photos.shape[0]

    ours = jax.jit(jax.value_and_grad(lambda p: train.photo_loss(p, photos, NET, vgg19, target, lw, spec)[0]))
    (loss, g), (loss_ref, g_ref) = ours(params), jax.jit(jax.value_and_grad(independent))(params)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    scale = max(float(np.abs(b).max()) for b in jax.tree.leaves(g_ref))
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.slow
def test_photo_loss_gradient_against_finite_differences(vgg19, rng):
    """Along a random direction of the output convolution's parameters (the painting is linear in them), the
    gradient agrees with a central difference."""
    style, spec, target, lw, photos = setup(vgg19, rng)
    params = fast.init_params(NET, jax.random.key(2))
    f = jax.jit(lambda p: train.photo_loss(p, photos, NET, vgg19, target, lw, spec)[0])
    g = jax.jit(jax.grad(f))(params)["out"]["conv"]
    d = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float32), g)
    along = sum(float(jnp.vdot(a, b)) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d), strict=True))

    def moved(eps):
        return f({**params, "out": {"conv": jax.tree.map(lambda p, u: p + eps * u, params["out"]["conv"], d)}})

    eps = 1e-3
    np.testing.assert_allclose((moved(eps) - moved(-eps)) / (2 * eps), along, rtol=1e-2)


@pytest.mark.slow
def test_a_step_lowers_the_loss_and_steps_are_deterministic(vgg19, rng):
    style, spec, target, lw, photos = setup(vgg19, rng)
    tx = train.optimizer(1e-2)
    step = train.make_step(NET, tx, spec)
    losses = []
    state = train.init(NET, tx, 0)
    for _ in range(3):
        state, terms = step(state, photos, vgg19, target, lw)
        losses.append(float(terms["loss"]))
    assert losses[-1] < losses[0]
    again = train.init(NET, tx, 0)
    for _ in range(3):
        again, _ = step(again, photos, vgg19, target, lw)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batches_depend_on_seed_and_step_only_and_skip_corrupt_photos(tmp_path):
    folder = photos_folder(tmp_path)
    (folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (folder / ".hidden.png").write_bytes(b"junk")
    files = train.photo_files(folder)
    assert len(files) == 6 and all(not f.name.startswith(".") for f in files)
    cfg = train.TrainConfig(batch=8, crop=16, seed=3)
    a = train.Photos(files, cfg)
    first = [a.batch(k) for k in range(3)]
    assert first[0].shape == (8, 16, 16, 3) and first[0].dtype == np.float32
    assert list(a.bad) == [folder / "sub" / "broken.jpg"]
    b = train.Photos(files, cfg)
    np.testing.assert_array_equal(b.batch(2), first[2])  # batch 2 without batches 0 and 1
    np.testing.assert_array_equal(b.batch(1, range(5, 8)), first[1][5:])  # some rows alone (one host's)
    assert not np.array_equal(first[0], first[1])
    assert [k for k, _ in a.batches(1, 4)] == [1, 2, 3]
    np.testing.assert_array_equal(dict(a.batches(1, 4))[2], first[2])


def test_photo_folders_that_cannot_train(tmp_path):
    with pytest.raises(JaxnstError, match="not a folder"):
        train.photo_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JaxnstError, match="no image"):
        train.photo_files(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    with pytest.raises(JaxnstError, match="none of the 1 photos"):
        train.Photos(train.photo_files(tmp_path / "bad"), train.TrainConfig(batch=1, crop=8)).batch(0)
    # One good photo of two: a held-out photo that could not be read (the CLI counts it in ``bad``) changes nothing.
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "bad" / "b.png")
    photos = train.Photos(train.photo_files(tmp_path / "bad"), train.TrainConfig(batch=2, crop=8))
    photos.bad.update({tmp_path / "held_out.png": "unreadable", tmp_path / "bad" / "a.png": "unreadable"})
    assert photos.batch(0).shape == (2, 8, 8, 3)  # as many failures as photos, and still one to read


@pytest.mark.slow
def test_model_files_round_trip_and_refuse_what_is_not_one(tmp_path, vgg19):
    params = fast.init_params(NET, jax.random.key(0))
    path = tmp_path / "m.jaxnst.h5"
    fast.save_model(fast.Model(NET, params, {"style": "s.png"}), path)
    model = fast.load_model(path)
    assert model.net == NET and model.info["style"] == "s.png" and model.info["jaxnst"] == jaxnst.__version__
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)

    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"hello")
    weights = tmp_path / "w.h5"
    jaxnst.save_weights(vgg19, weights)
    cases = {not_h5: "not an HDF5", weights: "without format", tmp_path / "gone.h5": "does not exist",
             tmp_path: "folder"}  # fmt: skip
    for where, change in [("width", 10**6), ("blocks", -1), ("version", 7), ("info", "[1]")]:
        bad = tmp_path / f"{where}.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "a") as f:
            f.attrs[where] = change
        cases[bad] = where if where != "version" else "version"
    nan = tmp_path / "nan.h5"
    nan.write_bytes(path.read_bytes())
    with h5py.File(nan, "a") as f:
        ds = []
        f.visititems(lambda n, o: ds.append(o) if isinstance(o, h5py.Dataset) else None)
        ds[0][...] = np.nan
    cases[nan] = "NaN"
    wider = tmp_path / "wider.h5"
    net8 = fast.TransformNet(width=8, blocks=1)
    fast.save_model(fast.Model(net8, fast.init_params(net8, jax.random.key(0)), {}), wider)
    with h5py.File(wider, "a") as f:
        f.attrs["width"] = 4
    cases[wider] = "is float32"
    for bad, words in cases.items():
        with pytest.raises(JaxnstError, match=words) as e:
            fast.load_model(bad)
        assert "\n" not in str(e.value)


@pytest.mark.slow
def test_weights_info_says_what_a_model_is(tmp_path, capsys):
    from jaxnst.cli import main

    path = tmp_path / "m.h5"
    info = {"train": {"steps": 3, "batch": 1}, "styles": ["a\nb.png"], "photos": 5, "bell\x07": "x"}
    fast.save_model(fast.Model(NET, fast.init_params(NET, jax.random.key(0)), info), path)
    assert main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "jaxnst fast network, model file version 1" in out
    assert f"width 4, 1 residual blocks, {fast.param_count(fast.load_model(path).params):,} parameters" in out
    assert "train:         steps=3, batch=1" in out and "photos:        5" in out
    assert 'styles:        ["a\\nb.png"]' in out and '"bell\\u0007":' in out  # one line each, no control bytes
    assert out.count("\n") == 5 + len(info) and "\x07" not in out
    (tmp_path / "bad.h5").write_bytes(path.read_bytes())
    with h5py.File(tmp_path / "bad.h5", "a") as f:
        f.attrs["width"] = 0
    assert main(["weights", "info", str(tmp_path / "bad.h5")]) == 2
    assert "its width is 0" in capsys.readouterr().err


SHARDED = """
import json, sys
import jax, numpy as np
import jaxnst
from jaxnst import fast, train
sys.path.insert(0, "tests")
from test_fast import CFG, NET
w = jaxnst.random_weights("vgg19", seed=0)
r = np.random.default_rng(0)
style = r.random((1, 20, 24, 3), np.float32)
spec, target = train.loss_spec(CFG), train.style_targets(w, [style], CFG)
lw = jaxnst.LossWeights.from_config(CFG)
tx = train.optimizer(1e-2)
step = train.make_step(NET, tx, spec)
grad = jax.jit(jax.grad(lambda p, x, w, t, l: train.photo_loss(p, x, NET, w, t, l, spec)[0]))
photos = r.random((4, 16, 16, 3), np.float32)
out = {}
for n in (1, 4):
    m = train.mesh(4, jax.devices()[:n])
    state, x, w_, t_, lw_ = train.place(m, train.init(NET, tx, 0), photos, w, target, lw)
    out[n] = [np.asarray(a) for a in jax.tree.leaves(grad(state.params, x, w_, t_, lw_))]
    state, terms = step(state, x, w_, t_, lw_)
    out[f"devices{n}"] = len(state.params["in"]["conv"]["kernel"].sharding.device_set)
print(json.dumps({"diff": max(float(np.abs(a - b).max()) for a, b in zip(out[1], out[4])),
                  "scale": max(float(np.abs(a).max()) for a in out[1]), "devices": out["devices4"]}))
"""


@pytest.mark.slow
def test_sharded_training_over_4_devices_equals_1():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["devices"] == 4
    # Each device sums its photos' gradients; the sum over devices comes in another order: float rounding. (Adam's
    # steps are not compared: they turn the rounding of a gradient near zero into a whole step of either sign.)
    assert got["diff"] <= 1e-5 * got["scale"]


def test_mesh_refuses_a_batch_that_does_not_split():
    with pytest.raises(JaxnstError, match="does not split"):
        train.mesh(3, [jax.devices()[0]] * 2)
