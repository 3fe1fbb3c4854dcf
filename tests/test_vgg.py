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
def test_features_match_numpy(pooling, pre, rng):
    params = small_params(1)
    images = rng.uniform(size=(2, 20, 28, 3)).astype(np.float32)
    w = jaxnst.Weights(to_jax(params), "vgg19", pre)
    got = jaxnst.features(w, images, TAPS, pooling=pooling)
    want = forward(
        params, images, TAPS, vgg.BLOCKS["vgg19"], pooling, (pre.channel_order == "BGR", pre.scale, pre.mean, pre.std)
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


def test_custom_conv_vjp_equals_autodiff(rng):
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 5)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 5, 6)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((2, 9, 7, 6)), jnp.float32)
    out, vjp = jax.vjp(vgg.conv3x3, x, k)
    ref_out, ref_vjp = jax.vjp(
        lambda a, b: lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")), x, k
    )
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(vjp(g), ref_vjp(g), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_gradient_through_network_unchanged_inside_loop(vgg19, rng):
    """The custom VJP gives the same image gradient at top level and inside a loop body."""
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    f = lambda img: jnp.sum(jaxnst.features(vgg19, img, ["relu2_1"])["relu2_1"] ** 2)
    top = jax.jit(jax.grad(f))(x)
    looped = jax.jit(lambda img: lax.fori_loop(0, 1, lambda i, g: jax.grad(f)(img) + g, jnp.zeros_like(img)))(x)

    # Reference: the same network with XLA's own convolution gradient.
    def f_ref(img):
        orig = vgg.conv3x3
        vgg.conv3x3 = vgg._direct
        try:
            return f(img)
        finally:
            vgg.conv3x3 = orig

    ref = jax.grad(f_ref)(x)
    np.testing.assert_allclose(top, ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(ref).max()))
    np.testing.assert_allclose(looped, ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(ref).max()))


def test_features_compose_with_vmap_and_grad(vgg19, rng):
    x = jnp.asarray(rng.uniform(size=(3, 1, 16, 16, 3)), jnp.float32)
    f = lambda img: jnp.mean(jaxnst.features(vgg19, img, ["relu1_1"])["relu1_1"])
    batched = jax.jit(jax.vmap(jax.grad(f)))(x)
    for i in range(3):
        np.testing.assert_allclose(batched[i], jax.grad(f)(x[i]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cin", [4, 128])  # direct and Winograd convolution
def test_conv_gradients_under_vmap(cin, rng):
    # Nested vmaps with a shared kernel (a batch of a sweep) and a vmap over per-item kernels
    # of the hand-written VJP both give the gradients of single calls.
    x = jnp.asarray(rng.standard_normal((2, 3, 2, 6, 5, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 3, cin, cin)) / (3 * np.sqrt(cin)), jnp.float32)
    g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    loss = lambda a, kk, gg: jnp.sum(vgg.conv3x3(a, kk) * gg)
    grad = jax.grad(loss, argnums=(0, 1))
    shared = jax.jit(jax.vmap(jax.vmap(grad, (0, None, 0)), (0, None, 0)))(x, k[0], g)
    own = jax.jit(jax.vmap(grad, (0, 0, 0)))(x[0], k, g[0])
    tol = dict(rtol=1e-5, atol=1e-5)
    for i in range(2):
        for j in range(3):
            want = grad(x[i, j], k[0], g[i, j])
            np.testing.assert_allclose(shared[0][i, j], want[0], **tol)
    for j in range(3):
        want = grad(x[0, j], k[j], g[0, j])
        np.testing.assert_allclose(own[0][j], want[0], **tol)
        np.testing.assert_allclose(own[1][j], want[1], **tol)


@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (1, 7, 5, 2)])
def test_max_pool_matches_reduce_window_and_routes_ties_to_first(shape, rng):
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    ref = lambda a: lax.reduce_window(a, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(vgg.max_pool2x2(x), ref(x))
    g = jnp.asarray(rng.standard_normal(ref(x).shape), jnp.float32)
    np.testing.assert_allclose(jax.vjp(vgg.max_pool2x2, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0], rtol=1e-6)
    # A window of equal values: all of the gradient goes to its first (top-left) element.
    flat = jnp.ones((1, 2, 2, 1))
    np.testing.assert_array_equal(jax.grad(lambda a: vgg.max_pool2x2(a).sum())(flat)[0, :, :, 0], [[1, 0], [0, 0]])
    flat2 = jnp.asarray([[0.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda a: vgg.max_pool2x2(a).sum())(flat2)[0, :, :, 0], [[0, 1], [0, 0]])


@pytest.mark.parametrize("shape", [(1, 7, 5, 128, 128), (2, 6, 9, 160, 136)])
def test_winograd_equals_direct_convolution(shape, rng):
    n, h, w, cin, cout = shape
    x = jnp.asarray(rng.standard_normal((n, h, w, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin)), jnp.float32)
    want = np.asarray(vgg._direct(x, k))
    np.testing.assert_allclose(vgg._winograd(x, k), want, rtol=0, atol=1e-5 * np.abs(want).max())
    if jax.default_backend() == "cpu":  # conv3x3 picks Winograd here, for both passes
        g = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
        got = jax.vjp(vgg.conv3x3, x, k)[1](g)
        ref = jax.vjp(vgg._direct, x, k)[1](g)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


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
    half = jaxnst.features(vgg19, x, taps, dtype=jnp.bfloat16)
    for t in taps:
        assert half[t].dtype == jnp.bfloat16
        err = jnp.linalg.norm(half[t].astype(jnp.float32) - full[t]) / jnp.linalg.norm(full[t])
        assert float(err) < 3e-2, (t, float(err))
