"""The GPU benchmark of issue 24, ready to run the moment a GPU is at hand (a few minutes on one):

    python scripts/bench_gpu.py                        # on a GPU: writes docs/benchmarks-gpu.json
    python scripts/bench_gpu.py --sizes 64 128 --steps 20 --out /tmp/g.json   # a dry run on a CPU

1. ``default``: the default run (``jaxnst.Config(size=S)``: coarse to fine, W2, EMA, at most 220 steps) end to end at
   each size: the first run pays the compiles (no persistent cache: that is the CLI's), the second, in the same process,
   finds them compiled; seconds to the end of the first block and in all.
2. ``sqrtm``: one scale at each size, ``--steps`` W2 steps with the matrix square roots by ``eigh`` (the default)
   and by Newton-Schulz: seconds per step after the first block, and the final loss of each (the second should be
   within 1 % of the first to be a candidate default).
3. ``precision``: the same one-scale run with ``--precision`` fp32, tf32 and bf16.
4. ``batch``: ``jaxnst.stylize_batch`` of 8 contents at the first size against 8 single runs' time per step.
5. ``train``: one update of ``jaxnst train``'s network at its defaults (Johnson's width 32, 4 crops of 256 px, the
   default objective), seconds per update after the compile, and so the hours of the COCO recipe's 40,000 updates
   (README, docs/fast.md).

Random VGG19 weights unless ``--weights`` (speed does not depend on the values; the losses do, so the sqrtm check
prefers real ones). Content and style from ``--images`` (Tübingen, The Starry Night), else random pixels. The JSON is
written after every measurement, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jaxnst
from jaxnst import losses

ROOT = Path(__file__).resolve().parents[1]


def timed(content, style, weights, cfg, **kw) -> dict:
    """One ``jaxnst.stylize`` run: seconds in all, to the end of its first block, per step after it; final loss."""
    seen = []
    t0 = time.perf_counter()
    jaxnst.stylize(content, [style], weights, cfg, callback=lambda p: seen.append((p.scale, p.step, p.elapsed,
                                                                                    p.loss)), **kw)  # fmt: skip
    total = time.perf_counter() - t0
    last = [s for s in seen if s[0] == seen[-1][0]]  # the last scale's blocks
    steps, secs = last[-1][1] - last[0][1], last[-1][2] - last[0][2]
    return {"seconds": round(total, 3), "first_block_s": round(seen[0][2], 3),
            "s_per_step": round(secs / steps, 5) if steps else None, "final_loss": float(seen[-1][3])}  # fmt: skip


def newton_schulz(on: bool) -> None:
    """The W2 statistic's square roots by Newton-Schulz (``on``) or ``eigh``; compiled programs are dropped, so that
    the next trace reads the registry again."""
    w2 = losses.STYLE_STATISTICS["w2"]
    method = "newton_schulz" if on else "eigh"
    losses.STYLE_STATISTICS["w2"] = w2._replace(
        distance=functools.partial(losses.w2_distance, method=method),
        prepare=functools.partial(losses.w2_target, method=method))  # fmt: skip
    jax.clear_caches()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--steps", type=int, default=200, help="steps of the one-scale runs")
    p.add_argument("--weights", default=None)
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    p.add_argument("--out", type=Path, default=None, help="default: docs/benchmarks-gpu.json, on a GPU only")
    args = p.parse_args()
    device = jax.devices()[0]
    if args.out is None and device.platform != "gpu":
        p.error(f"this is {device.platform}, not a GPU: give --out for a dry run")
    out = args.out or ROOT / "docs" / "benchmarks-gpu.json"
    weights = jaxnst.load_weights(args.weights) if args.weights else jaxnst.random_weights("vgg19", seed=0)
    record = {"command": "python scripts/bench_gpu.py " + " ".join(sys.argv[1:]),
              "device": f"{device.platform}: {device.device_kind}", "devices": jax.device_count(),
              "jax": jax.__version__, "python": platform.python_version(), "weights": weights.source,
              "default": {}, "sqrtm": {}, "precision": {}, "batch": {}, "train": {}}  # fmt: skip

    def save() -> None:
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record), flush=True)

    def images(size: int):
        names = args.images / "tubingen.jpg", args.images / "starry_night.jpg"
        if all(n.is_file() for n in names):
            return [jaxnst.load_image(n, size) for n in names]
        rng = np.random.default_rng(0)
        return [rng.random((size * 3 // 4, size, 3), np.float32) for _ in names]

    for size in args.sizes:
        content, style = images(size)
        cfg = jaxnst.Config(size=size)
        record["default"][size] = {"cold": timed(content, style, weights, cfg),
                                   "warm": timed(content, style, weights, cfg)}  # fmt: skip
        save()
    for size in args.sizes:
        content, style = images(size)
        one = jaxnst.Config(size=size, min_size=None, steps=args.steps)
        for on in (False, True):
            newton_schulz(on)
            record["sqrtm"].setdefault(size, {})["newton_schulz" if on else "eigh"] = timed(
                content, style, weights, one
            )
            save()
        newton_schulz(False)
        for precision in ("fp32", "tf32", "bf16"):
            cfg = dataclasses.replace(one, precision=precision)
            record["precision"].setdefault(size, {})[precision] = timed(content, style, weights, cfg)
            save()
    size = args.sizes[0]
    content, style = images(size)
    one = jaxnst.Config(size=size, min_size=None, steps=args.steps)
    seen = []  # (steps done, seconds) after each block
    t0 = time.perf_counter()
    jaxnst.stylize_batch([content] * 8, [style] * 8, weights, one,
                         callback=lambda b: seen.append((min(b.step), b.elapsed)))  # fmt: skip
    total = time.perf_counter() - t0
    (first, s0), (last, s1) = seen[0], seen[-1]
    record["batch"] = {"size": size, "items": 8, "seconds": round(total, 3),
                       "s_per_step_per_item": round((s1 - s0) / max(1, last - first) / 8, 5),
                       "single_s_per_step": record["precision"][size]["fp32"]["s_per_step"]}  # fmt: skip
    save()
    record["train"] = train_update(weights, style)
    save()


def train_update(weights, style, updates: int = 10) -> dict:
    """Seconds of one ``jaxnst train`` update at its defaults (the photos random: speed does not depend on them)."""
    from jaxnst import fast, train
    from jaxnst.config import style_size
    from jaxnst.image import fit_long_side
    from jaxnst.optimize import LossWeights

    tcfg = train.TrainConfig()
    cfg = jaxnst.Config(size=tcfg.crop)
    net, tx, spec = fast.TransformNet(tcfg.width, tcfg.blocks), train.optimizer(tcfg.lr), train.loss_spec(cfg)
    step, state = train.make_step(net, tx, spec), train.init(net, tx, tcfg.seed)
    w, h = fit_long_side(style.shape[1::-1], style_size(cfg))
    style = jax.image.resize(style, (h, w, 3), "linear")
    target, lw = train.style_targets(weights, [style[None]], cfg), LossWeights.from_config(cfg)
    photos = np.random.default_rng(0).random((tcfg.batch, tcfg.crop, tcfg.crop, 3), np.float32)
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(step(state, photos, weights, target, lw))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(updates):
        state, terms = step(state, photos, weights, target, lw)
    jax.block_until_ready(terms)
    per = (time.perf_counter() - t0) / updates
    return {"batch": tcfg.batch, "crop": tcfg.crop, "width": tcfg.width, "first_update_s": round(compile_s, 3),
            "s_per_update": round(per, 5), "coco_40000_updates_h": round(40000 * per / 3600, 2)}  # fmt: skip


if __name__ == "__main__":
    main()
