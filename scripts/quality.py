"""Side by side, with real weights: single-scale Gram (Gatys), coarse-to-fine Gram, coarse-to-fine W2 + EMA.

    python scripts/quality.py                               # 4 pairs at 512 px into docs/quality/
    python scripts/quality.py --pairs tubingen.jpg:starry_night.jpg --size 256 --out /tmp/q

Each setting gets the same time on the 2-core CPU, by its step counts, chosen
from seconds per step measured at each size (docs/benchmarks.md): the classic
500 steps at 512 px take ~330 s; coarse to fine, 128 -> 512 px by sqrt(2), takes
500 steps at the first scale and 250 at each other in about as long; W2's
square roots cost more per step, so it takes 320 and 160. (Other sizes scale
the same way.) Writes one JPEG per run and a strip per pair
(``{content}_x_{style}.jpg``: the three side by side) and ``quality.json``: the
settings, seconds, and every output's losses on common measures: the content
loss and the Gram and W2 style losses, each layer weighing 1, of the float image
(``--measure`` measures the published JPEGs instead and keeps the float image's
under ``float_image``: JPEG noise moves these measures by up to a third).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image

import jaxnst
from jaxnst import hub
from jaxnst.config import Config, preset
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    ("tubingen.jpg", "starry_night.jpg"),
    ("chelsea.png", "the_scream.jpg"),
    ("astronaut.png", "woman-with-hat-matisse.jpg"),
    ("coffee.png", "shipwreck.jpg"),
]


def settings(size: int) -> dict[str, Config]:
    gatys = preset("gatys", size=size)
    return {
        "gatys": gatys,
        "multiscale_gram": dataclasses.replace(gatys, min_size=128, initial_steps=500, steps=250),
        # crowsonkb's weights: content 0.015, style layers 256:64:16:4:1 normalised to sum 1, TV 2 on
        # torchvision's features. Here the layer weights are not normalised (x 341), so content 5.115 ~ 5;
        # and the Caffe-scaled features make both terms ~3300 x larger, so TV 2 becomes 2 * 3300 * 341.
        "multiscale_w2_ema": dataclasses.replace(
            gatys, min_size=128, initial_steps=320, middle_steps=None, steps=160, style_statistic="w2",
            content_weight=5.0, style_weight=1.0, style_layer_ratio=4.0, tv_weight=2e6, ema=0.99,
        ),  # the default until issue 24 (== preset("best", size=size))
        # The default since issue 24: the same objective, 60 + 3 x 20 + at most 100 steps, each scale ending
        # once its image stops changing (--tol), EMA 0.95.
        "default": Config(size=size),
    }  # fmt: skip


def common_losses(weights, image, content, style) -> dict[str, float]:
    """The content loss and both style losses of ``image``, default layers, each layer weighing 1."""
    cfg, out = preset("gatys"), {}
    for stat in ("gram", "w2"):
        spec = LossSpec(cfg.content_layers, cfg.style_layers, style_statistic=stat)
        targets = make_targets(weights, content[None], [style[None]], spec)
        _, terms = objective(jnp.asarray(image)[None], weights, targets, LossWeights.from_config(cfg), spec=spec)
        out[f"style_{stat}"] = float(terms["style"])
        out["content"] = float(terms["content"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "quality")
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pairs", nargs="+", default=[f"{c}:{s}" for c, s in PAIRS], metavar="CONTENT:STYLE")
    p.add_argument("--only", nargs="+", default=None, help="run only these settings")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the published images")
    p.add_argument("--measure", action="store_true", help="only measure the losses of the JPEGs in --out again")
    args = p.parse_args()

    path = Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print)
    weights = jaxnst.load_weights(path)
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.out / "quality.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"runs": []}
    record["weights"] = str(hub.identify(path, weights))
    if args.measure:  # the published JPEGs, all measured alike
        for run in record["runs"]:
            c, s = next(pair.split(":") for pair in args.pairs if run["pair"] == "_x_".join(
                Path(n).stem for n in pair.split(":")))  # fmt: skip
            content, style = (jaxnst.load_image(args.images / n, args.size) for n in (c, s))
            image = jaxnst.load_image(args.out / f"{run['pair']}_{run['setting']}.jpg")
            run.update(common_losses(weights, image, content, style))
            run["config"] = dataclasses.asdict(settings(args.size)[run["setting"]])
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        return
    for pair in args.pairs:
        c, s = pair.split(":")
        content = jaxnst.load_image(args.images / c, args.size)
        style = jaxnst.load_image(args.images / s, args.size)
        stem = f"{Path(c).stem}_x_{Path(s).stem}"
        for name, cfg in settings(args.size).items():
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            image = np.asarray(jaxnst.stylize(content, [style], weights, cfg))
            seconds = time.perf_counter() - t0
            jaxnst.save_image(image, args.out / f"{stem}_{name}.jpg", quality=args.quality)
            measured = common_losses(weights, image, content, style)
            run = {"pair": stem, "setting": name, "seconds": round(seconds, 1),
                   "config": dataclasses.asdict(cfg), **measured, "float_image": measured}  # fmt: skip
            record["runs"] = [r for r in record["runs"] if (r["pair"], r["setting"]) != (stem, name)] + [run]
            record_path.write_text(json.dumps(record, indent=1) + "\n")
            print(json.dumps(run), flush=True)
        strip = [args.out / f"{stem}_{name}.jpg" for name in settings(args.size)]
        if all(f.exists() for f in strip):
            ims = [Image.open(f) for f in strip]
            h = min(im.height for im in ims)
            ims = [im.resize((round(im.width * h / im.height), h)) for im in ims]
            canvas = Image.new("RGB", (sum(im.width for im in ims) + 8 * (len(ims) - 1), h), "white")
            x = 0
            for im in ims:
                canvas.paste(im, (x, 0))
                x += im.width + 8
            canvas.save(args.out / f"{stem}.jpg", quality=args.quality)


if __name__ == "__main__":
    main()
