"""Every 10 steps of one run: the output's change per step, and every 20 steps its losses at full size.

    python scripts/quality_trace.py coffee.png shipwreck.jpg docs/quality/curve/trace_best.json --preset best

The data behind the stopping rule (``--tol``) and the schedule of docs/quality.md: one run of the default
(or of ``--preset``), its image (``Progress.image``) taken after each block of 10 steps; ``change`` is the RMS
change of its pixels per step since the block before (the quantity ``--tol`` smooths), and every 20 steps the
image is resized to the full size and measured as ``scripts/quality.py`` measures (content, Gram, W2). The
seconds include the measuring.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from quality import ROOT, common_losses  # scripts/quality.py, beside this one

import jaxnst
from jaxnst import hub


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("out", type=Path, help="the JSON to write")
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--preset", default=None, help="a preset (jaxnst.config.PRESETS) instead of the default")
    args = p.parse_args()
    weights = jaxnst.load_weights(Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print))
    content = jaxnst.load_image(args.images / args.content, args.size)
    style = jaxnst.load_image(args.images / args.style, args.size)
    cfg = jaxnst.preset(args.preset, size=args.size) if args.preset else jaxnst.Config(size=args.size)
    rows, before = [], {}

    def take(pr: jaxnst.Progress) -> None:
        img = np.asarray(pr.image)
        row = {"scale": pr.scale, "step": pr.step, "loss": pr.loss, "seconds": round(pr.elapsed, 1)}
        if pr.scale in before and pr.step > before[pr.scale][0]:
            row["change"] = float(
                np.sqrt(np.mean(np.square(img - before[pr.scale][1]))) / (pr.step - before[pr.scale][0])
            )
        before[pr.scale] = (pr.step, img)
        if pr.step % 20 == 0 or pr.done:
            small = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
            full = np.asarray(small.resize(content.shape[1::-1], Image.LANCZOS), np.float32) / 255
            row.update(common_losses(weights, full, content, style))
        rows.append(row)
        print(json.dumps(row), flush=True)

    jaxnst.stylize(content, [style], weights, cfg, callback=take, every=10)
    args.out.write_text(json.dumps(rows, indent=0) + "\n")


if __name__ == "__main__":
    main()
