"""The README gallery: contents x styles with real pretrained weights, as small JPEGs in docs/gallery/.

    python scripts/gallery.py                                  # into ./gallery, the cached default weights
    python scripts/gallery.py --out docs/gallery --overwrite   # remake the README's
    python scripts/gallery.py --images DIR --weights FILE --size 256 --steps 300

Each image is one ``jaxnst.stylize`` with ``preset("gatys")`` apart from
``--size`` and ``--steps``, the same as ``jaxnst CONTENT STYLE -o OUT --preset gatys
--size 256 --steps 300``. Reads the full-size images from ``--images`` (default
../shared/images, beside the repository); writes ``{content}_x_{style}.jpg`` and
``gallery.json`` (weights, settings, seconds per image) into ``--out``, replacing
files there only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jaxnst
from jaxnst import hub

ROOT = Path(__file__).resolve().parents[1]
CONTENTS = ["tubingen.jpg", "chelsea.png", "coffee.png"]
STYLES = ["starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images",
                   help="folder of the full-size contents and styles (default: ../shared/images)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("gallery"), help="output folder (default: ./gallery; the "
                   "README's is docs/gallery)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the images already in --out")
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--preset", default="gatys", help="the settings (config.PRESETS; the gallery is made with gatys)")
    p.add_argument("--quality", type=int, default=80, help="JPEG quality of the published images")
    p.add_argument("--contents", nargs="+", default=CONTENTS)
    p.add_argument("--styles", nargs="+", default=STYLES)
    args = p.parse_args(argv)
    missing = [name for name in args.contents + args.styles if not (args.images / name).is_file()]
    if missing:
        fail(f"{', '.join(missing)} not in {args.images}: give --images, the folder of the full-size images")
    names = [f"{Path(c).stem}_x_{Path(s).stem}.jpg" for c in args.contents for s in args.styles] + ["gallery.json"]
    there = [n for n in names if (args.out / n).exists()]
    if there and not args.overwrite:
        shown = ", ".join(there[:3]) + (", ..." if len(there) > 3 else "")
        fail(f"{args.out} already holds {shown}: add --overwrite to replace them, or give another --out")

    path = Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print)
    weights = jaxnst.load_weights(path)
    identity = hub.identify(path, weights)
    cfg = jaxnst.preset(args.preset, size=args.size, steps=args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for c in args.contents:
        content = jaxnst.load_image(args.images / c, cfg.size)
        for s in args.styles:
            style = jaxnst.load_image(args.images / s, cfg.size)
            t0 = time.perf_counter()
            image = np.asarray(jaxnst.stylize(content, [style], weights, cfg))
            seconds = time.perf_counter() - t0
            name = f"{Path(c).stem}_x_{Path(s).stem}.jpg"
            jaxnst.save_image(image, args.out / name, quality=args.quality)
            runs.append({"file": name, "content": c, "style": s, "seconds": round(seconds, 1)})
            print(f"{name}: {image.shape[1]}x{image.shape[0]}, {seconds:.1f} s", flush=True)
    record = {
        "weights": {"file": path.name, "source": weights.source, "identity": identity.text},
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k in ("size", "steps", "optimizer", "lr")},
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform}",
        "runs": runs,
    }
    (args.out / "gallery.json").write_text(json.dumps(record, indent=2) + "\n")


def fail(message: str) -> None:
    print(f"gallery.py: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
