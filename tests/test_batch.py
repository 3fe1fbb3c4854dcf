"""stylize_batch against single stylize runs; buckets; sharding over 4 host devices (subprocess)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxnst
from jaxnst.batch import PER_ITEM, batched_engine, bucket_shape, device_mesh, grid_configs, stylize_batch
from jaxnst.optimize import LossSpec

BASE = jaxnst.Config(steps=8, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"), style_weight=1e3)


def images(rng, *shapes):
    return [rng.uniform(size=(*s, 3)).astype(np.float32) for s in shapes]


@pytest.mark.slow
def test_batch_of_3_equals_3_single_runs(vgg19, rng):
    contents = images(rng, (32, 32), (32, 32), (32, 32))
    styles = images(rng, (32, 24), (24, 32), (16, 16))
    configs = [
        dataclasses.replace(BASE, style_weight=1e2),
        dataclasses.replace(BASE, lr=0.05, init="noise", seed=1, tv_weight=10.0),
        # asks for more steps but stops early on its own (tol: at its 10th step, the first it may), the others go on
        dataclasses.replace(BASE, content_weight=1.0, init="noise", seed=2, steps=14, tol=0.2),
    ]
    run = batched_engine(LossSpec.from_config(BASE, 32 * 32), "adam", False, device_mesh()).run
    before = run._cache_size()
    seen = []
    outs = stylize_batch(contents, styles, vgg19, configs, every=3, callback=seen.append)
    assert run._cache_size() == before + 1  # one compile for the (shape, batch size), blocks included
    for c, s, cfg, out, steps in zip(contents, styles, configs, outs, seen[-1].step, strict=True):
        single = []
        ref = jaxnst.stylize(c, [s], vgg19, cfg, every=3, callback=single.append)
        np.testing.assert_allclose(out, ref, atol=1e-5)
        assert steps == single[-1].step
    assert seen[-1].done and seen[-1].step[0] == 8 and seen[-1].step[2] == 10
    assert "converged" in seen[-1].reasons[2]
    # Other weights, rates and seeds: the same program.
    stylize_batch(contents, styles, vgg19, [dataclasses.replace(c, lr=0.1, seed=5) for c in configs], every=4)
    assert run._cache_size() == before + 1


@pytest.mark.parametrize(("statistic", "atol"), [("gram", 1e-5), ("w2", 2e-3)])
@pytest.mark.slow
def test_sweep_of_3_style_weights_equals_3_single_runs(vgg19, rng, statistic, atol):
    # W2's batched eigendecompositions round differently from single ones, and the steps amplify
    # it (the stylize_batch docstring): 6e-4 apart after 8 steps on some CPUs; the Gram, 1e-5.
    content, style = images(rng, (24, 32), (32, 32))
    base = dataclasses.replace(BASE, style_statistic=statistic)
    sweep = grid_configs(base, {"style_weight": [1e2, 1e3, 1e4]})
    assert [v for v, _ in sweep] == [{"style_weight": 1e2}, {"style_weight": 1e3}, {"style_weight": 1e4}]
    # One style: shared Grams.
    run = batched_engine(LossSpec.from_config(base, 24 * 32), "adam", True, device_mesh()).run
    before = run._cache_size()
    outs = stylize_batch([content], [style], vgg19, [c for _, c in sweep], multiple=8)
    assert run._cache_size() == before + 1
    for (_, cfg), out in zip(sweep, outs, strict=True):
        np.testing.assert_allclose(out, jaxnst.stylize(content, [style], vgg19, cfg), atol=atol)
    assert not np.allclose(outs[0], outs[2])


@pytest.mark.slow
def test_mixed_sizes_land_in_buckets_and_keep_their_aspect_ratio(vgg19, images_dir):
    names = ["chelsea.png", "tubingen.jpg", "woman-with-hat-matisse.jpg", "astronaut.png", "coffee.png"]
    contents = [jaxnst.load_image(images_dir / n, 48) for n in names]
    style = jaxnst.load_image(images_dir / "starry_night.jpg", 32)
    shapes = [c.shape[:2] for c in contents]
    assert shapes == [(32, 48), (36, 48), (48, 35), (48, 48), (32, 48)]
    seen = []
    outs = stylize_batch(
        contents, [style], vgg19, dataclasses.replace(BASE, steps=2), multiple=16, callback=seen.append
    )
    buckets = {p.shape: p.items for p in seen if p.done}
    # chelsea, tubingen (36 -> 32) and coffee share one program; the others get their own.
    assert buckets == {(32, 48): (0, 1, 4), (48, 32): (2,), (48, 48): (3,)}
    for c, out in zip(contents, outs, strict=True):
        assert out.shape == c.shape  # each output at its own content's shape, so its aspect ratio
    assert bucket_shape(341, 512) == (352, 512) and bucket_shape(10, 700) == (32, 704)
    assert bucket_shape(37, 50, None) == (37, 50)


def test_items_must_agree_on_what_shapes_the_program(vgg19, rng):
    c, s = images(rng, (16, 16), (16, 16))
    with pytest.raises(jaxnst.JaxnstError, match="differ in content_layers"):
        stylize_batch([c], [s], vgg19, [BASE, dataclasses.replace(BASE, content_layers=("relu1_1",))])
    with pytest.raises(jaxnst.JaxnstError, match="2 styles for 3 items"):
        stylize_batch([c, c, c], [s, s], vgg19, BASE)
    with pytest.raises(jaxnst.JaxnstError, match="cannot sweep pooling"):
        grid_configs(BASE, {"pooling": ["avg"]})
    assert "lr" in PER_ITEM and "style_weight" in PER_ITEM


SHARDED = r"""
import dataclasses, json, sys
import jax, numpy as np
import jaxnst
from jaxnst.batch import device_mesh, stylize_batch, stylize_spatial

assert jax.device_count() == 4, jax.devices()
w = jaxnst.random_weights("vgg19", 0)
r = np.random.default_rng(0)
img = lambda *s: r.uniform(size=(*s, 3)).astype(np.float32)
base = jaxnst.Config(steps=6, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"), style_weight=1e3)
# The Gram: with W2 the programs of 1 and 4 items per device round eigh differently (1e-3 after 6 steps
# on an AMD EPYC), which tests the eigensolver, not the sharding.
cfgs = [dataclasses.replace(base, style_weight=v, lr=l, style_statistic="gram")
        for v, l in ((1e2, 0.02), (1e3, 0.05), (1e4, 0.1))]
contents, styles = [img(32, 32) for _ in range(3)], [img(32, 24) for _ in range(3)]
# 3 items over 4 devices: padded to 4, the copy dropped.
sharded = stylize_batch(contents, styles, w, cfgs, every=3)
single_device = stylize_batch(contents, styles, w, cfgs, every=3, mesh=device_mesh(jax.devices()[:1]))
content, style = img(64, 40), img(32, 32)
gram = dataclasses.replace(base, style_statistic="gram", style_layer_ratio=1.0, ema=0.0, tv_weight=0.0)
spatial = stylize_spatial(content, [style], w, gram, every=3)
whole = jaxnst.stylize(content, [style], w, gram, every=3)
spatial_w2 = stylize_spatial(content, [style], w, dataclasses.replace(base, style_weight=1.0), every=3)
whole_w2 = jaxnst.stylize(content, [style], w, dataclasses.replace(base, style_weight=1.0), every=3)
json.dump({
    "batch": max(float(np.abs(a - b).max()) for a, b in zip(sharded, single_device)),
    "spatial": float(np.abs(np.asarray(spatial) - np.asarray(whole)).max()),
    "spatial_w2": float(np.abs(np.asarray(spatial_w2) - np.asarray(whole_w2)).max()),
    "spatial_devices": len(spatial.sharding.device_set),
}, sys.stdout)
"""


@pytest.mark.slow
def test_sharded_over_4_devices_equals_unsharded():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    diff = json.loads(r.stdout.strip().splitlines()[-1])
    # The batch axis changes no arithmetic: each device runs whole items.
    assert diff["batch"] <= 1e-6
    # Splitting the height sums each Gram over devices in another order; after
    # 6 Adam steps that is float rounding (measured ~5e-7), far below one grey
    # level (1/255 = 4e-3).
    assert diff["spatial"] <= 1e-5
    # W2 traces square roots of covariances with many eigenvalues at float32 rounding (random
    # weights' dead channels); their order of summation shows more (measured 5e-5): still far
    # below a grey level.
    assert diff["spatial_w2"] <= 2e-4
    assert diff["spatial_devices"] == 4


@pytest.mark.slow
def test_lbfgs_batch_equals_single_runs(vgg19, rng):
    contents, style = images(rng, (24, 24), (24, 24)), images(rng, (24, 32))[0]
    cfg = dataclasses.replace(BASE, steps=3, optimizer="lbfgs")
    configs = [cfg, dataclasses.replace(cfg, style_weight=1e4)]
    outs = stylize_batch(contents, [style], vgg19, configs, multiple=8)
    for c, cf, out in zip(contents, configs, outs, strict=True):
        np.testing.assert_allclose(out, jaxnst.stylize(c, [style], vgg19, cf), atol=1e-5)


@pytest.mark.slow
def test_images_too_small_for_the_deepest_layer_are_refused(vgg19, rng):
    content, style = images(rng, (32, 32), (12, 40))
    cfg = dataclasses.replace(BASE, style_layers=("relu1_1", "relu3_1"))  # relu3_1 needs 4 px; the style is 12 high
    stylize_batch([content], [style], vgg19, cfg)  # fine
    with pytest.raises(jaxnst.JaxnstError, match="style image is 40x3 px: layer relu3_1 needs at least 4 px"):
        stylize_batch([content], [images(rng, (3, 40))[0]], vgg19, cfg)


@pytest.mark.slow
def test_multiscale_batch_items_equal_single_runs(vgg19, rng):
    """Coarse to fine with a moving average, per-item steps and weights: each item is its single run."""
    contents = images(rng, (32, 32), (32, 32))
    styles = images(rng, (32, 24), (24, 32))
    base = dataclasses.replace(BASE, min_size=16, initial_steps=4, middle_steps=None, steps=3, ema=0.5)
    configs = [base, dataclasses.replace(base, steps=2, initial_steps=5, style_weight=1e2, init="gray")]
    seen = []
    outs = stylize_batch(contents, styles, vgg19, configs, every=2, callback=seen.append)
    assert [p.scale for p in seen][-1] == 2 and seen[-1].scales == 3 and seen[-1].done
    assert seen[-1].step == seen[-1].steps == (4 + 3 + 3, 5 + 2 + 2)
    assert [p.shape for p in seen if p.scale == 1][0] == (23, 23)
    for c, s, cfg, out in zip(contents, styles, configs, outs, strict=True):
        np.testing.assert_allclose(out, jaxnst.stylize(c, [s], vgg19, cfg, every=2), atol=1e-5)
