"""How the default's picture improves with steps: its image and losses at checkpoints of the schedule.

    python scripts/quality_curve.py --pairs coffee.png:shipwreck.jpg     # into docs/quality/curve/
    python scripts/quality_curve.py --size 256 --out /tmp/curve           # the 4 pairs of scripts/quality.py

One run of the default (``jaxnst.Config(size=...)``, coarse to fine, W2, EMA) per pair, or of the default
with another schedule (``--preset``, ``--initial-steps``, ``--middle-steps``, ``--steps``, ``--ema``,
``--tol``), with the image taken at every quarter of every scale's steps. Each of those images is what the
run would give if it stopped there: it is resized to the full size (Lanczos, as ``jaxnst.load_image``
resizes) and measured as docs/quality.md measures (``scripts/quality.py``'s ``common_losses``: content,
Gram and W2 style losses, every layer weighing 1), with the seconds since the run started (compile
included). Writes ``curve.json`` (a pair and schedule run again replaces its earlier run) and, per pair
and schedule, the final image (``{content}_x_{style}_{name}.jpg``; ``--name``, else from the steps) and a
strip of the checkpoints of the last two scales (``..._curve.jpg``), to look at where the picture stops
changing. ``--strip NAME...`` puts finished schedules' images side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from quality import PAIRS, ROOT, common_losses  # scripts/quality.py, beside this one

import jaxnst
from jaxnst import hub
from jaxnst.config import parse_value

QUARTERS = 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "quality" / "curve")
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pairs", nargs="+", default=[f"{c}:{s}" for c, s in PAIRS], metavar="CONTENT:STYLE")
    p.add_argument("--initial-steps", type=int, default=None, help="steps at the first scale (default: the default's)")
    p.add_argument("--steps", type=int, default=None, help="steps at the last scale (default: the default's)")
    p.add_argument("--middle-steps", default=None, help="steps at each middle scale, or none (default: the default's)")
    p.add_argument("--ema", type=float, default=None, help="the moving average's decay (default: the default's)")
    p.add_argument("--tol", type=float, default=None, help="end a scale when its image stops changing (--tol)")
    p.add_argument("--preset", default=None, help="start from this preset (jaxnst.config.PRESETS), not the default")
    p.add_argument("--name", default=None, help="the schedule's name in curve.json (default: from its steps)")
    p.add_argument("--strip", nargs="+", default=None, metavar="NAME",
                   help="run nothing: put the final images of these schedules side by side, per pair")  # fmt: skip
    args = p.parse_args()
    if args.strip:
        for pair in args.pairs:
            stem = "_x_".join(Path(n).stem for n in pair.split(":"))
            ims = [Image.open(args.out / f"{stem}_{name}.jpg") for name in args.strip]
            canvas = Image.new("RGB", (sum(im.width for im in ims) + 8 * (len(ims) - 1), ims[0].height), "white")
            for k, im in enumerate(ims):
                canvas.paste(im, (sum(i.width + 8 for i in ims[:k]), 0))
            canvas.save(args.out / f"{stem}_{'_'.join(args.strip)}.jpg", quality=85)
        return

    path = Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print)
    weights = jaxnst.load_weights(path)
    cfg = jaxnst.preset(args.preset, size=args.size) if args.preset else jaxnst.Config(size=args.size)
    keys = ("initial_steps", "middle_steps", "steps", "ema", "tol")
    changes = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if "middle_steps" in changes:
        changes["middle_steps"] = parse_value("middle_steps", changes["middle_steps"])
    cfg = dataclasses.replace(cfg, **changes)
    # The schedule: steps at the first scale + at each middle one + at the last, and what is not the default's.
    name = args.name or (f"{cfg.initial_steps}+{cfg.middle_steps}+{cfg.steps}"
                         + "".join(f"_{k}{changes[k]}" for k in ("ema", "tol") if k in changes))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.out / "curve.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"runs": []}
    record.update(weights=str(hub.identify(path, weights)), config=dataclasses.asdict(jaxnst.Config(size=args.size)))
    taken: list[dict] = []

    def take(pr: jaxnst.Progress) -> None:
        quarter = max(1, pr.steps // QUARTERS)
        if pr.step > 0 and (pr.step % quarter == 0 or pr.done):
            taken.append({"scale": pr.scale, "step": pr.step, "steps": pr.steps, "seconds": pr.elapsed,
                          "image": np.asarray(pr.image)})  # fmt: skip

    for pair in args.pairs:
        c, s = pair.split(":")
        content = jaxnst.load_image(args.images / c, args.size)
        style = jaxnst.load_image(args.images / s, args.size)
        stem = f"{Path(c).stem}_x_{Path(s).stem}"
        taken.clear()
        t0 = time.perf_counter()
        final = np.asarray(jaxnst.stylize(content, [style], weights, cfg, callback=take))
        total = time.perf_counter() - t0
        seen, points = set(), []
        for t in taken:  # the end of a scale is reported twice (its last block, then ``done``)
            if (t["scale"], t["step"]) in seen:
                continue
            seen.add((t["scale"], t["step"]))
            small = Image.fromarray((np.clip(t.pop("image"), 0, 1) * 255).round().astype(np.uint8))
            full = np.asarray(small.resize(content.shape[1::-1], Image.LANCZOS), np.float32) / 255
            points.append({**t, "seconds": round(t["seconds"], 1), "side": max(small.size), "image": full,
                           **common_losses(weights, full, content, style)})  # fmt: skip
        last = {**common_losses(weights, final, content, style), "seconds": round(total, 1)}
        run = {"pair": stem, "schedule": name, "final": last,
               "points": [{k: v for k, v in pt.items() if k != "image"} for pt in points]}  # fmt: skip
        record["runs"] = [r for r in record["runs"] if (r["pair"], r.get("schedule")) != (stem, name)] + [run]
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(run), flush=True)
        scales = max(pt["scale"] for pt in points)
        shown = [pt for pt in points if pt["scale"] >= scales - 1]
        thumbs = [Image.fromarray((pt["image"] * 255).round().astype(np.uint8)) for pt in shown]
        thumbs = [im.resize((256, round(im.height * 256 / im.width)), Image.LANCZOS) for im in thumbs]
        canvas = Image.new("RGB", (4 * 256 + 3 * 4, -(-len(thumbs) // 4) * (thumbs[0].height + 4) - 4), "white")
        for k, im in enumerate(thumbs):
            canvas.paste(im, ((k % 4) * 260, (k // 4) * (im.height + 4)))
        canvas.save(args.out / f"{stem}_{name}_curve.jpg", quality=85)
        jaxnst.save_image(final, args.out / f"{stem}_{name}.jpg", quality=85)


if __name__ == "__main__":
    main()
