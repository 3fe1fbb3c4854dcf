"""Matrix square roots and the Wasserstein-2 style distance against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst import losses, sqrtm

METHODS = ["eigh", "newton_schulz"]


def np_sqrtm(a):
    w, v = np.linalg.eigh(np.asarray(a, np.float64))
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def spd(rng, c, n=None, cond=10.0):
    """Random SPD matrices with eigenvalues spread over ``cond``."""
    shape = (c, c) if n is None else (n, c, c)
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    w = np.exp(rng.uniform(0, np.log(cond), size=shape[:-1]))
    return np.einsum("...ij,...j,...kj->...ik", q, w, q)


def np_w2(m1, s1, m2, s2):
    c = m1.shape[-1]
    root2 = np_sqrtm(s2)
    cross = np.trace(np_sqrtm(root2 @ s1 @ root2))
    return np.mean((m1 - m2) ** 2) + (np.trace(s1) + np.trace(s2) - 2 * cross) / c


@pytest.mark.parametrize("method", METHODS)
def test_sqrt_and_inverse_match_numpy(rng, method):
    a = spd(rng, 48, n=2)
    root, inv = sqrtm.sqrt_and_inverse(jnp.asarray(a, jnp.float32), method)
    for i in range(2):
        want = np_sqrtm(a[i])
        np.testing.assert_allclose(root[i], want, atol=1e-4 * np.abs(want).max())
        np.testing.assert_allclose(inv[i], np.linalg.inv(want), atol=1e-4 * np.abs(np.linalg.inv(want)).max())


def test_sqrtm_known_value():
    np.testing.assert_allclose(sqrtm.sqrtm(jnp.array([[4.0, 0.0], [0.0, 9.0]])), [[2, 0], [0, 3]], rtol=1e-6)
    # [[5, 4], [4, 5]] = [[2, 1], [1, 2]]^2
    np.testing.assert_allclose(sqrtm.sqrtm(jnp.array([[5.0, 4.0], [4.0, 5.0]])), [[2, 1], [1, 2]], rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_trace_sqrtm_gradient_matches_finite_differences(rng, method):
    with jax.enable_x64(True):
        m = jnp.asarray(spd(rng, 6, cond=4.0))
        g = jax.grad(lambda a: sqrtm.trace_sqrtm(a, method))(m)
        np.testing.assert_allclose(g, np.linalg.inv(np_sqrtm(m)) / 2, rtol=1e-5)
        eps = 1e-6
        for _ in range(6):
            e = jnp.asarray(rng.standard_normal((6, 6)))  # any direction, not only symmetric ones
            fd = (sqrtm.trace_sqrtm(m + eps * e, "eigh") - sqrtm.trace_sqrtm(m - eps * e, "eigh")) / (2 * eps)
            np.testing.assert_allclose(jnp.sum(g * e), fd, rtol=1e-5)


def test_trace_sqrtm_gradient_is_finite_with_repeated_eigenvalues():
    """A ReLU layer's dead channels give many equal eigenvalues; autodiff through eigh divides by
    their differences, the custom gradient does not."""
    for method, small in (("eigh", 1e-4), ("eigh", 0.5), ("newton_schulz", 0.5)):
        m = jnp.diag(jnp.array([small, small, small, 2.0]))
        g = jax.grad(lambda a: sqrtm.trace_sqrtm(a, method))(m)  # noqa: B023
        want = np.diag([0.5 / np.sqrt(small)] * 3 + [0.5 / np.sqrt(2)])
        np.testing.assert_allclose(g, want, rtol=1e-4)


def test_newton_schulz_leaves_small_eigenvalues_unconverged():
    """Why ``eigh`` is the default: 12 iterations cannot reach eigenvalues 1e-6 of the norm
    (the covariance of a layer with dead channels), where eigh is exact."""
    m = jnp.diag(jnp.array([1e-6] * 3 + [1.0]))
    exact = 3e-3 + 1.0
    assert abs(float(sqrtm.trace_sqrtm(m, "eigh")) - exact) < 1e-6
    assert abs(float(sqrtm.trace_sqrtm(m, "newton_schulz")) - exact) > 1e-3


def gaussians(rng, c):
    f = rng.standard_normal((1, 6, 7, c)) @ rng.standard_normal((c, c)) + rng.standard_normal(c)
    return losses.gaussian_moments(jnp.asarray(f, jnp.float32))


def test_w2_matches_numpy_zero_and_symmetric(rng):
    a, b = gaussians(rng, 24), gaussians(rng, 24)
    ga, gb = losses.w2_target(a), losses.w2_target(b)
    np64 = lambda g: (np.asarray(g.mean[0], np.float64), np.asarray(g.cov[0], np.float64))  # noqa: E731
    want = np_w2(*np64(ga), *np64(gb))
    ab, ba = losses.w2_distance(a, gb), losses.w2_distance(b, ga)
    np.testing.assert_allclose(ab, [want], rtol=1e-4)
    np.testing.assert_allclose(ba, ab, rtol=1e-4)
    assert abs(float(losses.w2_distance(a, ga)[0])) <= 1e-4 * want


def test_w2_on_random_spd_matches_numpy(rng):
    """The distance from means and covariances given directly."""
    c = 32
    m1, m2 = rng.standard_normal((2, c))
    s1, s2 = spd(rng, c, cond=100.0), spd(rng, c, cond=100.0)
    eps = losses.W2_EPS * np.eye(c)

    def moments(m, s):
        f32 = lambda a: jnp.asarray(a[None], jnp.float32)  # noqa: E731
        return losses.GaussianMoments(f32(m), f32(s - eps), f32(np.outer(m, m)))

    got = losses.w2_distance(moments(m1, s1), losses.w2_target(moments(m2, s2)))
    np.testing.assert_allclose(got, [np_w2(m1, s1, m2, s2)], rtol=1e-4)


def test_w2_target_of_blended_styles_is_the_pooled_gaussian(rng):
    """Two styles blend through their raw moments: the target is the Gaussian of their pooled positions."""
    f1 = jnp.asarray(rng.standard_normal((1, 5, 5, 4)), jnp.float32)
    f2 = jnp.asarray(rng.standard_normal((1, 5, 5, 4)) * 2 + 3.0, jnp.float32)
    pooled = losses.w2_target(losses.gaussian_moments(jnp.concatenate([f1, f2], axis=2)))
    m1, m2 = losses.gaussian_moments(f1), losses.gaussian_moments(f2)
    blended = losses.w2_target(jax.tree.map(lambda a, b: (a + b) / 2, m1, m2))
    for got, want in zip(blended, pooled, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    x = np.concatenate([np.asarray(f1), np.asarray(f2)], axis=2).reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(blended.cov[0], np.cov(x.T, bias=True) + losses.W2_EPS * np.eye(4), rtol=1e-5)


def test_eigh_on_cpu_is_one_matrix_at_a_time_also_under_vmap(rng):
    """jaxlib 0.10's batched CPU eigh can deadlock when calls run concurrently (sqrtm.eigh's docstring):
    the CPU program may only hold unbatched LAPACK calls, and still give jnp.linalg.eigh's answer."""
    a = jnp.asarray(spd(rng, 6, n=6).reshape(3, 2, 6, 6), jnp.float32)
    for fn, x in [(sqrtm.eigh, a), (jax.vmap(sqrtm.eigh), a), (jax.vmap(jax.vmap(sqrtm.eigh)), a)]:
        hlo = jax.jit(fn).lower(x).as_text()
        calls = [line for line in hlo.splitlines() if "syevd" in line]
        assert calls and all('num_batch_dims = "0"' in line for line in calls), calls
        w, v = fn(x)
        np.testing.assert_allclose(w, jnp.linalg.eigh(a)[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(jnp.einsum("...ij,...j,...kj->...ik", v, w, v), a, rtol=1e-4, atol=1e-4)
    batched = jax.jit(jax.vmap(jnp.linalg.eigh)).lower(a).as_text()  # what the test guards against
    assert 'num_batch_dims = "1"' in batched or 'num_batch_dims = "2"' in batched
