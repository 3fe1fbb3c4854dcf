import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnst
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective


def np_gram(f, norm):
    n, h, w, c = f.shape
    m = f.reshape(n, h * w, c).astype(np.float64)
    return np.einsum("npc,npd->ncd", m, m) / {"chw": c * h * w, "hw": h * w}[norm]


@pytest.mark.parametrize("norm", ["chw", "hw"])
def test_gram_matches_numpy(norm, rng):
    f = rng.standard_normal((2, 5, 7, 4)).astype(np.float32)
    got = jax.jit(lambda a: jaxnst.losses.gram(a, norm=norm))(f)
    np.testing.assert_allclose(got, np_gram(f, norm), rtol=1e-5)


def test_gram_known_value():
    f = np.zeros((1, 1, 2, 2), np.float32)
    f[0, 0, 0] = [1, 2]
    f[0, 0, 1] = [3, 4]
    # F^T F = [[1+9, 2+12], [2+12, 4+16]], H*W = 2, C*H*W = 4
    np.testing.assert_allclose(jaxnst.losses.gram(f, norm="hw")[0], [[5, 7], [7, 10]])
    np.testing.assert_allclose(jaxnst.losses.gram(f, norm="chw")[0], [[2.5, 3.5], [3.5, 5]])


def test_content_loss_matches_numpy(rng):
    a, b = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    want = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(jax.jit(jaxnst.losses.content_loss)(a, b), want, rtol=1e-5)


def test_style_loss_matches_numpy(rng):
    grams = {"a": rng.standard_normal((2, 4, 4)), "b": rng.standard_normal((2, 3, 3))}
    targets = {"a": rng.standard_normal((1, 4, 4)), "b": rng.standard_normal((1, 3, 3))}
    w = {"a": 0.5, "b": 2.0}
    want = sum(w[k] * ((grams[k] - targets[k]) ** 2).mean(axis=(1, 2)) for k in grams)
    got = jaxnst.losses.style_loss({k: jnp.asarray(v, jnp.float32) for k, v in grams.items()}, targets, w)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    unweighted = sum(((grams[k] - targets[k]) ** 2).mean(axis=(1, 2)) for k in grams)
    np.testing.assert_allclose(jaxnst.losses.style_loss(grams, targets), unweighted, rtol=1e-5)


def np_mean_std(f, eps=1e-5):
    m = f.astype(np.float64)
    return m.mean(axis=(1, 2)), np.sqrt(m.var(axis=(1, 2)) + eps)


def test_mean_std_matches_numpy(rng):
    f = (rng.standard_normal((2, 5, 7, 4)) * 3 + 1).astype(np.float32)
    mean, std = jax.jit(jaxnst.losses.mean_std)(f)
    want_mean, want_std = np_mean_std(f)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, want_std, rtol=1e-5)
    # A constant channel: std sqrt(eps), and a finite gradient.
    g = jax.grad(lambda a: jnp.sum(jaxnst.losses.mean_std(a)[1]))(jnp.ones((1, 3, 3, 2)))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_mean_std_style_loss_matches_numpy(rng):
    feats = {"a": rng.standard_normal((2, 6, 5, 4)), "b": rng.uniform(size=(2, 3, 3, 8))}
    styles = {"a": rng.standard_normal((1, 7, 4, 4)) * 2, "b": rng.uniform(size=(1, 5, 3, 8)) + 1}
    w = {"a": 0.5, "b": 2.0}
    want = 0
    for k in feats:
        (m, s), (mt, st) = np_mean_std(feats[k]), np_mean_std(styles[k])
        want = want + w[k] * (((m - mt) ** 2).mean(axis=1) + ((s - st) ** 2).mean(axis=1))
    stat = lambda d: {k: jaxnst.losses.mean_std(jnp.asarray(v, jnp.float32)) for k, v in d.items()}  # noqa: E731
    got = jaxnst.losses.style_loss(stat(feats), stat(styles), w)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("statistic", ["gram", "mean_std"])
@pytest.mark.slow
def test_objective_style_term_with_layer_weights_matches_numpy(vgg19, rng, statistic):
    """Targets blend in statistic space; the style term weighs each layer by its loss weight."""
    layers = ("relu1_1", "relu2_1")
    spec = LossSpec((), layers, "hw", style_statistic=statistic)
    s1 = jnp.asarray(rng.uniform(size=(1, 16, 24, 3)), jnp.float32)
    s2 = jnp.asarray(rng.uniform(size=(1, 20, 12, 3)), jnp.float32)
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    t = make_targets(vgg19, None, [s1, s2], spec, (1.0, 3.0))
    feats = lambda a: {k: np.asarray(v) for k, v in jaxnst.features(vgg19, a, layers).items()}  # noqa: E731
    fx, f1, f2 = feats(x), feats(s1), feats(s2)
    stat = (lambda f: (np_gram(f, "hw"),)) if statistic == "gram" else np_mean_std
    want = 0
    for k, lw in zip(layers, (0.3, 2.0), strict=True):
        blend = [0.25 * a + 0.75 * b for a, b in zip(stat(f1[k]), stat(f2[k]), strict=True)]
        for got_leaf, want_leaf in zip(jax.tree.leaves(t.style[k]), blend, strict=True):
            np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-4, atol=1e-6 * np.abs(want_leaf).max())
        want = want + lw * sum(((a - b) ** 2).mean() for a, b in zip(stat(fx[k]), blend, strict=True))
    lw = LossWeights(0.0, 1.0, 0.0, {}, {"relu1_1": 0.3, "relu2_1": 2.0})
    _, terms = objective(x, vgg19, t, lw, spec=spec)
    np.testing.assert_allclose(terms["style"], want, rtol=1e-4)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_tv_loss_matches_numpy(kind, rng):
    x = rng.uniform(size=(2, 6, 9, 3)).astype(np.float32)
    rho = np.square if kind == "l2" else np.abs
    x64 = x.astype(np.float64)
    want = rho(np.diff(x64, axis=1)).mean(axis=(1, 2, 3)) + rho(np.diff(x64, axis=2)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(jaxnst.losses.tv_loss(x, kind=kind), want, rtol=1e-5)
    assert float(jaxnst.losses.tv_loss(np.ones((1, 5, 5, 3)), kind=kind)[0]) == 0.0


@pytest.mark.parametrize("statistic", ["gram", "mean_std", "w2"])
@pytest.mark.slow
def test_objective_gradient_matches_finite_differences(rng, statistic):
    """d total / d image against central differences, in float64 on a 12 px image."""
    from conftest import small_params

    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), small_params(3))
        w = jaxnst.Weights(params, "vgg19", jaxnst.vgg.TORCH)
        # For W2 only relu1_1: relu2_1 of these weights has dead channels, where the traced square root's
        # eigenvalues are ~eps^2 and float64 eigh leaves ~1e-8 of noise, too much for a difference quotient
        # (test_sqrtm checks that gradient with repeated and tiny eigenvalues).
        style_layers = ("relu1_1",) if statistic == "w2" else ("relu1_1", "relu2_1")
        spec = LossSpec(("relu2_1",), style_layers, "chw", "l2", statistic)
        content = jnp.asarray(rng.uniform(size=(1, 12, 12, 3)))
        style = jnp.asarray(rng.uniform(size=(1, 10, 14, 3)))
        targets = make_targets(w, content, [style], spec)
        lw = LossWeights(1.0, 1e3, 0.5, {"relu2_1": 1.0}, {"relu1_1": 0.3, "relu2_1": 2.0})
        lw = lw._replace(style_layers={n: lw.style_layers[n] for n in style_layers})
        f = lambda x: objective(x, w, targets, lw, spec=spec)[0]
        x = jnp.asarray(rng.uniform(0.2, 0.8, size=(1, 12, 12, 3)))
        grad = jax.grad(f)(x)
        eps, tol = 1e-5, 1e-6
        idx = [tuple(rng.integers(0, s) for s in x.shape) for _ in range(12)]
        for i in idx:
            e = jnp.zeros_like(x).at[i].set(eps)
            fd = (f(x + e) - f(x - e)) / (2 * eps)
            assert abs(float(grad[i]) - float(fd)) <= tol * max(1.0, abs(float(fd))), (i, grad[i], fd)


def test_objective_is_weighted_sum_of_terms(vgg19, rng):
    spec = LossSpec(("relu2_1",), ("relu1_1",), "hw", "l1", "gram")
    c = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    s = jnp.asarray(rng.uniform(size=(1, 16, 20, 3)), jnp.float32)
    t = make_targets(vgg19, c, [s], spec)
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    total, terms = objective(x, vgg19, t, LossWeights(2.0, 3.0, 4.0, {"relu2_1": 1.0}, {"relu1_1": 1.0}), spec=spec)
    np.testing.assert_allclose(total, 2 * terms["content"] + 3 * terms["style"] + 4 * terms["tv"], rtol=1e-5)
    feats = jaxnst.features(vgg19, x, ["relu2_1", "relu1_1"])
    np.testing.assert_allclose(
        terms["content"], jaxnst.losses.content_loss(feats["relu2_1"], t.content["relu2_1"])[0], rtol=1e-5
    )
    np.testing.assert_allclose(terms["tv"], jaxnst.losses.tv_loss(x, kind="l1")[0], rtol=1e-6)


def test_style_blend_is_weighted_mean_of_grams(vgg19, rng):
    spec = LossSpec((), ("relu1_1",), style_statistic="gram")
    c = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    s1 = jnp.asarray(rng.uniform(size=(1, 16, 24, 3)), jnp.float32)
    s2 = jnp.asarray(rng.uniform(size=(1, 20, 12, 3)), jnp.float32)
    g = lambda s: jaxnst.losses.gram(jaxnst.features(vgg19, s, ["relu1_1"])["relu1_1"])
    t = make_targets(vgg19, c, [s1, s2], spec, (1.0, 3.0))
    np.testing.assert_allclose(t.style["relu1_1"], 0.25 * g(s1) + 0.75 * g(s2), rtol=1e-5)
    with pytest.raises(jaxnst.JaxnstError, match="one per style") as e:
        make_targets(vgg19, c, [s1, s2], spec, (1.0,))
    assert e.value.field == "style_blend_weights" and "--style-blend-weights" in e.value.for_cli()


@pytest.mark.slow
def test_objective_w2_term_matches_numpy(vgg19, rng):
    """Two styles blend through raw moments; each layer's W2 against a float64 NumPy reference."""
    from test_sqrtm import np_w2

    layers = ("relu1_1", "relu2_1")
    spec = LossSpec((), layers, style_statistic="w2")
    s1 = jnp.asarray(rng.uniform(size=(1, 16, 24, 3)), jnp.float32)
    s2 = jnp.asarray(rng.uniform(size=(1, 20, 12, 3)), jnp.float32)
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    t = make_targets(vgg19, None, [s1, s2], spec, (1.0, 3.0))
    feats = lambda a: {k: np.asarray(v, np.float64) for k, v in jaxnst.features(vgg19, a, layers).items()}  # noqa: E731

    def gaussian(f):  # mean and covariance (+ eps I) over positions
        m = f.reshape(-1, f.shape[-1])
        mu = m.mean(0)
        return mu, (m - mu).T @ (m - mu) / len(m) + 1e-4 * np.eye(len(mu))

    def moments(f):
        m = f.reshape(-1, f.shape[-1])
        return m.mean(0), m.T @ m / len(m)

    fx, f1, f2 = feats(x), feats(s1), feats(s2)
    # relu2_1 of these random weights has dead channels: eigenvalues ~eps^2 = 1e-8 of the matrix whose
    # square root is traced, where float32's eigh errs by ~1e-7 of its norm: 0.15 % of the value.
    for k, lw, rtol in zip(layers, (0.3, 2.0), (1e-4, 2e-3), strict=True):
        (a1, b1), (a2, b2) = moments(f1[k]), moments(f2[k])
        mu, second = 0.25 * a1 + 0.75 * a2, 0.25 * b1 + 0.75 * b2
        cov = second - np.outer(mu, mu) + 1e-4 * np.eye(len(mu))
        np.testing.assert_allclose(t.style[k].cov[0], cov, rtol=1e-4, atol=1e-5 * np.abs(cov).max())
        want = lw * np_w2(*gaussian(fx[k]), mu, cov)
        lw = LossWeights(0.0, 1.0, 0.0, {}, {n: lw if n == k else 0.0 for n in layers})
        _, terms = objective(x, vgg19, t, lw, spec=spec)
        np.testing.assert_allclose(terms["style"], want, rtol=rtol)


@pytest.mark.parametrize("statistic", ["gram", "mean_std", "w2"])
@pytest.mark.slow
def test_blend_one_zero_equals_the_single_style(vgg19, rng, statistic):
    spec = LossSpec(("relu2_1",), ("relu1_1", "relu2_1"), style_statistic=statistic)
    c = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    s1 = jnp.asarray(rng.uniform(size=(1, 16, 24, 3)), jnp.float32)
    s2 = jnp.asarray(rng.uniform(size=(1, 20, 12, 3)), jnp.float32)
    blended = make_targets(vgg19, c, [s1, s2], spec, (1.0, 0.0))
    single = make_targets(vgg19, c, [s1], spec)
    # W2's covariance square root is compared through the loss: these random weights leave dead
    # channels, whose near-zero eigenvalues' roots differ by float32 rounding between two programs.
    drop_root = lambda t: {k: v._replace(cov_sqrt=0) for k, v in t.style.items()} if statistic == "w2" else t  # noqa: E731
    for a, b in zip(jax.tree.leaves(drop_root(blended)), jax.tree.leaves(drop_root(single)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    x = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
    lw = LossWeights(1.0, 1.0, 0.0, {"relu2_1": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0})
    terms = [objective(x, vgg19, t, lw, spec=spec)[1]["style"] for t in (blended, single)]
    # W2's float32 accuracy (test_sqrtm): 1.5e-4 apart on an AMD EPYC, below 1e-4 on other CPUs.
    np.testing.assert_allclose(terms[0], terms[1], rtol=5e-4 if statistic == "w2" else 1e-5)
