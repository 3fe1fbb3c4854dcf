"""A fast network's paintings of photos it was not trained on, beside the photo and beside the optimisation default,
with the losses of docs/quality.md measured alike (``quality.common_losses``: content, Gram and W2 style, each layer
weighing 1, at the same size).

    python scripts/fast_compare.py models/shipwreck_w16.h5 --out docs/fast

For each ``--photos`` name (in ``--images``): the network's painting at ``--size`` (long side), a strip
photo | default | network (the default is docs/quality's JPEG of the pair where there is one, else left out), and
``compare.json`` with every image's losses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import jaxnst
from jaxnst import fast, hub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from quality import common_losses  # noqa: E402


def strip(images: list[np.ndarray]) -> Image.Image:
    ims = [Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)) for a in images]
    canvas = Image.new("RGB", (sum(im.width for im in ims) + 8 * (len(ims) - 1), ims[0].height), "white")
    x = 0
    for im in ims:
        canvas.paste(im, (x, 0))
        x += im.width + 8
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--style", default="shipwreck.jpg")
    p.add_argument("--photos", nargs="+", default=["coffee.png", "tubingen.jpg"])
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "fast")
    args = p.parse_args()

    path = Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print)
    weights = jaxnst.load_weights(path)
    model = fast.load_model(args.model)
    style = jaxnst.load_image(args.images / args.style, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": "python scripts/fast_compare.py " + " ".join(sys.argv[1:]), "model": model.info, "runs": []}
    for name in args.photos:
        photo = jaxnst.load_image(args.images / name, args.size)
        painted = np.asarray(fast.stylize(model, photo))
        stem = f"{Path(name).stem}_x_{Path(args.style).stem}"
        jaxnst.save_image(painted, args.out / f"{stem}_fast.jpg", quality=90)
        row = [photo]
        default = ROOT / "docs" / "quality" / f"{stem}_multiscale_w2_ema.jpg"
        runs = {"fast network": painted}
        if default.exists():
            runs["optimisation default"] = jaxnst.load_image(default)
            row.append(runs["optimisation default"])
        row.append(painted)
        # The network's painting as saved (a JPEG, as the default's is), so both are measured alike.
        runs["fast network"] = jaxnst.load_image(args.out / f"{stem}_fast.jpg")
        for what, image in runs.items():
            record["runs"].append({"pair": stem, "image": what, **common_losses(weights, image, photo, style)})
            print(json.dumps(record["runs"][-1]), flush=True)
        strip(row).save(args.out / f"{stem}.jpg", quality=90)
    (args.out / "compare.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
