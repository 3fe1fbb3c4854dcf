import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_params, to_jax
from jax import lax
from numpy_vgg import forward

import jaxnst
from jaxnst import vgg

TAPS = ["conv1_1", "relu1_2", "pool1", "conv2_1", "relu2_2", "pool2", "relu3_1"]


def rel_err(a, b):
    return np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("pre", [vgg.CAFFE, vgg.TORCH])
@pytest.mark.slow
def test_features_match_numpy(pooling, pre, rng):
    params = small_params(1)
    images = rng.uniform(size=(2, 20, 28, 3)).astype(np.float32)
    w = jaxnst.Weights(to_jax(params), "vgg19", pre)
    got = jaxnst.features(w, images, TAPS, pooling=pooling)
    want = forward(
        params,
        images,
        TAPS,
        vgg.BLOCKS["vgg19"],
        pooling,
        (pre.channel_order == "BGR", pre.scale, pre.mean, pre.std),
        vgg.AVG_POOL_SCALES if pooling == "avg" else None,
    )
    assert set(got) == set(TAPS)
    for t in TAPS:
        assert got[t].shape == want[t].shape, t
        assert rel_err(got[t], want[t]) <= 1e-5, t


def test_only_requested_layers_are_computed(rng):
    params = small_params(2)
    # Without conv1_2 in the tree, asking for relu1_1 must still work: nothing deeper runs.
    w = jaxnst.Weights(to_jax({"conv1_1": params["conv1_1"]}))
    out = jaxnst.features(w, rng.uniform(size=(1, 16, 16, 3)), ["relu1_1"])
    assert list(out) == ["relu1_1"]
    with pytest.raises(flax.errors.ScopeParamNotFoundError):
        jaxnst.features(w, rng.uniform(size=(1, 16, 16, 3)), ["relu1_2"])


def test_vgg16_layer_names():
    names = vgg.layer_names("vgg16")
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert "conv3_3" in names and "conv3_4" not in names and names[-1] == "pool5"
    assert len(vgg.conv_layers("vgg16")) == 13 and len(vgg.conv_layers("vgg19")) == 16


def test_unknown_tap_lists_valid_ones():
    with pytest.raises(jaxnst.JaxnstError, match="relu9_9.*valid layers are conv1_1 relu1_1"):
        vgg.check_taps("vgg19", ["relu1_1", "relu9_9"])


@pytest.mark.slow
def test_gradient_through_network_unchanged_inside_loop(vgg19, rng):
    """The custom VJP gives the same image gradient at top level and inside a loop body."""
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    f = lambda img: jnp.sum(jaxnst.features(vgg19, img, ["relu2_1"])["relu2_1"] ** 2)
    top = jax.jit(jax.grad(f))(x)
    looped = jax.jit(lambda img: lax.fori_loop(0, 1, lambda i, g: jax.grad(f)(img) + g, jnp.zeros_like(img)))(x)

    # Reference: the same network with XLA's own convolution and pooling gradients.
    f_ref = lambda img: jnp.sum(jaxnst.features(vgg19, img, ["relu2_1"], ops="lax")["relu2_1"] ** 2)
    ref = jax.grad(f_ref)(x)
    np.testing.assert_allclose(top, ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(ref).max()))
    np.testing.assert_allclose(looped, ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(ref).max()))


def test_features_compose_with_vmap_and_grad(vgg19, rng):
    x = jnp.asarray(rng.uniform(size=(3, 1, 16, 16, 3)), jnp.float32)
    f = lambda img: jnp.mean(jaxnst.features(vgg19, img, ["relu1_1"])["relu1_1"])
    batched = jax.jit(jax.vmap(jax.grad(f)))(x)
    for i in range(3):
        np.testing.assert_allclose(batched[i], jax.grad(f)(x[i]), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_remat_and_bf16(vgg19, rng):
    x = jnp.asarray(rng.uniform(size=(1, 20, 24, 3)), jnp.float32)
    taps = ["relu1_1", "relu3_1"]
    f = lambda img, **kw: sum(
        jnp.mean(v.astype(jnp.float32) ** 2) for v in jaxnst.features(vgg19, img, taps, **kw).values()
    )
    g, g_remat = jax.grad(f)(x), jax.jit(jax.grad(lambda a: f(a, remat=True)))(x)
    np.testing.assert_allclose(g_remat, g, rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda a: f(a, remat=True)))(x))
    assert "remat" in jaxpr or "checkpoint" in jaxpr
    full = jaxnst.features(vgg19, x, taps)
    half = jaxnst.features(vgg19, x, taps, precision="bf16")
    for t in taps:
        assert half[t].dtype == jnp.bfloat16
        err = jnp.linalg.norm(half[t].astype(jnp.float32) - full[t]) / jnp.linalg.norm(full[t])
        assert float(err) < 3e-2, (t, float(err))


@pytest.mark.slow
def test_forward_mode_through_the_lax_network(vgg19, rng):
    """``ops='lax'`` gives ``jax.jvp``: its ``J v`` matches the default network's ``J^T u``
    (``<u, J v> = <J^T u, v>``), a central difference and ``jacfwd``; the default refuses forward mode."""
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    v = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    tap = lambda img, ops: jaxnst.features(vgg19, img, ["relu2_1"], ops=ops)["relu2_1"]
    y, jv = jax.jvp(lambda a: tap(a, "lax"), (x,), (v,))
    y_fast, vjp = jax.vjp(lambda a: tap(a, "fast"), x)
    np.testing.assert_allclose(y, y_fast, rtol=1e-5, atol=1e-5 * float(jnp.abs(y).max()))
    u = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
    np.testing.assert_allclose(jnp.vdot(u, jv), jnp.vdot(vjp(u)[0], v), rtol=1e-4)
    with jax.enable_x64(True):  # float64, so that the difference quotient is accurate to ~1e-9
        x64, v64, eps = x.astype(jnp.float64), v.astype(jnp.float64), 1e-6
        fd = (tap(x64 + eps * v64, "lax") - tap(x64 - eps * v64, "lax")) / (2 * eps)
        jv64 = np.asarray(jax.jvp(lambda a: tap(a, "lax"), (x64,), (v64,))[1])
        fd = np.asarray(fd)
    assert jv64.dtype == np.float64
    assert np.linalg.norm(fd - jv64) / np.linalg.norm(jv64) < 1e-6
    np.testing.assert_allclose(jv, jv64, rtol=1e-4, atol=1e-4 * np.abs(jv64).max())
    jacfwd = jax.jacfwd(lambda t: tap(x + t * v, "lax"))(0.0)
    np.testing.assert_allclose(jacfwd, jv, rtol=1e-5, atol=1e-5 * float(jnp.abs(jv).max()))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda a: tap(a, "fast"), (x,), (v,))


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.slow
def test_ops_choices_agree(pooling, vgg19, rng):
    """Every ``ops`` gives the default's features and image gradient, to float32 rounding
    (conv3_1 runs Winograd in the default on CPU)."""
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    taps = ["relu1_2", "pool2", "relu3_1"]
    feats = lambda img, ops: jaxnst.features(vgg19, img, taps, pooling=pooling, ops=ops)
    loss = lambda img, ops: sum(jnp.mean(f**2) for f in feats(img, ops).values())
    want, want_grad = feats(x, "fast"), jax.grad(loss)(x, "fast")
    for ops in ("direct", "lax", jaxnst.ops.Ops(jaxnst.ops.lax_conv3x3, jaxnst.ops.max_pool2x2)):
        got = feats(x, ops)
        for t in taps:
            np.testing.assert_allclose(got[t], want[t], rtol=1e-5, atol=1e-5 * float(jnp.abs(want[t]).max()))
        grad = jax.grad(loss)(x, ops)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-4 * float(jnp.abs(want_grad).max()))


def test_vgg_takes_its_convolution_and_pooling_as_fields(vgg19, rng):
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    shapes = []

    def conv(a, kernel, precision=None):
        shapes.append(kernel.shape)
        return jaxnst.ops.lax_conv3x3(a, kernel, precision)

    model = vgg.VGG("vgg19", ("pool2",), vgg19.preprocessing, conv=conv, pool=jaxnst.ops.avg_pool2x2,
                    pool_scales=vgg.AVG_POOL_SCALES)  # fmt: skip
    got = model.apply({"params": vgg19.params}, x)["pool2"]
    assert shapes == [(3, 3, 3, 64), (3, 3, 64, 64), (3, 3, 64, 128), (3, 3, 128, 128)]
    np.testing.assert_array_equal(got, jaxnst.features(vgg19, x, ["pool2"], pooling="avg", ops="lax")["pool2"])
    # The choice is static: it selects the traced program (the default's hand-written VJPs show
    # in it), and it can be a static argument of jit.
    jaxpr = lambda ops: str(jax.make_jaxpr(lambda a: jaxnst.features(vgg19, a, ["relu2_1"], ops=ops))(x))
    assert "custom_vjp" in jaxpr("fast") and "custom_vjp" not in jaxpr("lax")
    jitted = jax.jit(jaxnst.features, static_argnames=("taps", "ops"))
    for ops in ("lax", jaxnst.ops.OPS["direct"]):
        np.testing.assert_allclose(
            jitted(vgg19, x, ("relu2_1",), ops=ops)["relu2_1"],
            jaxnst.features(vgg19, x, ["relu2_1"])["relu2_1"],
            rtol=1e-5,
            atol=1e-5 * 300,  # relu2_1 is ~300 here
        )
    with pytest.raises(jaxnst.JaxnstError, match="unknown ops 'winograd': use one of fast, direct, lax"):
        jaxnst.features(vgg19, x, ["relu1_1"], ops="winograd")
