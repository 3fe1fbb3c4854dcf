import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxnst
from jaxnst import ops


def test_custom_conv_vjp_equals_autodiff(rng):
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 5)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 5, 6)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((2, 9, 7, 6)), jnp.float32)
    ref_out, ref_vjp = jax.vjp(
        lambda a, b: lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")), x, k
    )
    for conv in (ops.conv3x3, ops.direct_conv3x3, ops.lax_conv3x3):
        out, vjp = jax.vjp(conv, x, k)
        np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
        for a, b in zip(vjp(g), ref_vjp(g), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cin", [4, 128])  # direct and Winograd convolution
@pytest.mark.slow
def test_conv_gradients_under_vmap(cin, rng):
    # Nested vmaps with a shared kernel (a batch of a sweep) and a vmap over per-item kernels
    # of the hand-written VJP both give the gradients of single calls.
    x = jnp.asarray(rng.standard_normal((2, 3, 2, 6, 5, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 3, cin, cin)) / (3 * np.sqrt(cin)), jnp.float32)
    g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    loss = lambda a, kk, gg: jnp.sum(ops.conv3x3(a, kk) * gg)
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
@pytest.mark.slow
def test_max_pool_matches_reduce_window_and_routes_ties_to_first(shape, rng):
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    ref = lambda a: lax.reduce_window(a, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(ops.max_pool2x2(x), ref(x))
    np.testing.assert_array_equal(ops.lax_max_pool2x2(x), ref(x))
    g = jnp.asarray(rng.standard_normal(ref(x).shape), jnp.float32)
    np.testing.assert_allclose(jax.vjp(ops.max_pool2x2, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0], rtol=1e-6)
    # A window of equal values: all of the gradient goes to its first (top-left) element.
    flat = jnp.ones((1, 2, 2, 1))
    np.testing.assert_array_equal(jax.grad(lambda a: ops.max_pool2x2(a).sum())(flat)[0, :, :, 0], [[1, 0], [0, 0]])
    flat2 = jnp.asarray([[0.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(jax.grad(lambda a: ops.max_pool2x2(a).sum())(flat2)[0, :, :, 0], [[0, 1], [0, 0]])


@pytest.mark.parametrize("shape", [(1, 7, 5, 128, 128), (2, 6, 9, 160, 136)])
@pytest.mark.slow
def test_winograd_equals_direct_convolution(shape, rng):
    n, h, w, cin, cout = shape
    x = jnp.asarray(rng.standard_normal((n, h, w, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin)), jnp.float32)
    want = np.asarray(ops.lax_conv3x3(x, k))
    np.testing.assert_allclose(ops.winograd_conv3x3(x, k), want, rtol=0, atol=1e-5 * np.abs(want).max())
    if jax.default_backend() == "cpu":  # conv3x3 picks Winograd here, for both passes
        assert ops.use_winograd(x, k)
        g = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
        got = jax.vjp(ops.conv3x3, x, k)[1](g)
        ref = jax.vjp(ops.lax_conv3x3, x, k)[1](g)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("hw", [(1, 1), (1, 2), (2, 1), (0, 0), (0, 3), (1, 0)])
@pytest.mark.slow
def test_conv_of_tiny_and_empty_maps(hw, rng):
    # The deepest VGG maps of a small image (--size 16) are 1x1 or empty; empty ones crashed Winograd's reshapes.
    x = jnp.asarray(rng.standard_normal((1, *hw, 128)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 128, 136)) / 34, jnp.float32)
    g = jnp.asarray(rng.standard_normal((1, *hw, 136)), jnp.float32)
    want, want_vjp = jax.vjp(ops.lax_conv3x3, x, k)
    assert want.shape == (1, *hw, 136)
    if jax.default_backend() == "cpu":
        assert ops.use_winograd(x, k)  # so conv3x3 runs Winograd in both passes
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.winograd_conv3x3(x, k), want, **tol)
    got, got_vjp = jax.vjp(ops.conv3x3, x, k)
    np.testing.assert_allclose(got, want, **tol)
    for a, b in zip(got_vjp(g), want_vjp(g), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


# The table in ops' docstring: which derivatives each implementation supports. Each hand-written
# VJP is compared with the plain-lax implementation of the same operation.
HAND = {"conv3x3": ops.conv3x3, "direct_conv3x3": ops.direct_conv3x3, "max_pool2x2": ops.max_pool2x2}
PLAIN = {
    "lax_conv3x3": ops.lax_conv3x3,
    "winograd_conv3x3": ops.winograd_conv3x3,
    "lax_max_pool2x2": ops.lax_max_pool2x2,
    "avg_pool2x2": ops.avg_pool2x2,
}
REFERENCE = {"conv3x3": "lax_conv3x3", "direct_conv3x3": "lax_conv3x3", "max_pool2x2": "lax_max_pool2x2"}


def _problem(name, cin=8):
    """A smooth scalar function of an image through the operation ``name``, a point and a direction."""
    r = np.random.default_rng(1)
    x = jnp.asarray(r.standard_normal((1, 6, 4, cin)), jnp.float32)
    v = jnp.asarray(r.standard_normal(x.shape), jnp.float32)
    k = jnp.asarray(r.standard_normal((3, 3, cin, cin)) / (3 * np.sqrt(cin)), jnp.float32)
    op = {**HAND, **PLAIN}[name]
    apply = (lambda a: op(a, k)) if "conv" in name else op
    return (lambda a: jnp.sum(jnp.tanh(apply(a)) ** 2)), x, v


def _second_orders(f, x, v):
    """The same Hessian-vector product three ways: forward-over-reverse, reverse-over-reverse,
    and ``jax.hessian`` along the line ``x + t v``."""
    return [
        jax.jvp(jax.grad(f), (x,), (v,))[1],
        jax.grad(lambda a: jnp.vdot(jax.grad(f)(a), v))(x),
        jax.hessian(lambda t: f(x + t * v))(0.0),
    ]


@pytest.mark.parametrize("name", list(HAND))
@pytest.mark.slow
def test_hand_written_vjp_reverse_and_second_order_but_no_forward_mode(name):
    cin = 128 if name == "conv3x3" else 8  # conv3x3 runs Winograd on CPU, in its VJP too
    f, x, v = _problem(name, cin)
    f_ref = _problem(REFERENCE[name], cin)[0]
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.grad(f)(x), jax.grad(f_ref)(x), **tol)
    for got, want in zip(_second_orders(f, x, v), _second_orders(f_ref, x, v), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))
    for forward in (lambda: jax.jvp(f, (x,), (v,)), lambda: jax.jacfwd(lambda t: f(x + t * v))(0.0)):
        with pytest.raises(TypeError, match="forward-mode"):
            forward()


@pytest.mark.parametrize("name", list(PLAIN))
@pytest.mark.slow
def test_plain_implementations_have_every_derivative(name):
    f, x, v = _problem(name)
    y, dy = jax.jvp(f, (x,), (v,))
    np.testing.assert_allclose(dy, jnp.vdot(jax.grad(f)(x), v), rtol=1e-4)
    np.testing.assert_allclose(jax.jacfwd(lambda t: f(x + t * v))(0.0), dy, rtol=1e-4)
    fwd_rev, rev_rev, vhv = _second_orders(f, x, v)
    np.testing.assert_allclose(rev_rev, fwd_rev, rtol=1e-4, atol=1e-4 * float(jnp.abs(fwd_rev).max()))
    np.testing.assert_allclose(vhv, jnp.vdot(fwd_rev, v), rtol=1e-3)


def test_ops_choices_are_named_and_hashable():
    assert set(ops.OPS) == {"fast", "direct", "lax"}
    assert ops.OPS["fast"] == ops.Ops(ops.conv3x3, ops.max_pool2x2)
    assert len({hash(o) for o in ops.OPS.values()}) == 3


def test_auto_ops_picks_winograd_only_where_it_repays_its_compile():
    from jaxnst.optimize import LossSpec

    spec = lambda px, **kw: LossSpec.from_config(jaxnst.Config(**kw), px).network.ops  # noqa: E731
    assert spec(128 * 96, steps=10) == "direct"  # a short run: the compile dominates
    assert spec(512 * 384, steps=500) == "fast"
    assert spec(256 * 192, steps=40) == "direct" and spec(256 * 192, steps=60) == "fast"
    assert spec(None, steps=1) == "fast"  # shape unknown: the fastest step
    assert spec(128 * 96, steps=10, ops="fast") == "fast" and spec(512 * 384, steps=500, ops="lax") == "lax"
