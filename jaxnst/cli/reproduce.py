"""``jaxnst reproduce OUT.png``: run again what made a PNG, from the record jaxnst wrote into it.

The record (a ``jaxnst`` text chunk, ``jaxnst.record``) holds the absolute paths of the
images and weights, the weights' SHA-256, every ``Config`` field and the device. The run is the
single-image command with exactly those flags, or for an image of the web page or ``jaxnst batch``
the batch program that made it; the result is compared pixel by pixel. On the
same backend, jaxnst version and weights it is the same image (exit 0); otherwise the command
says what differs (exit 1).
"""

from __future__ import annotations

from pathlib import Path

from jaxnst._files import check_file
from jaxnst.cli.common import Parser, config_argv, say
from jaxnst.cli.stylize import build_parser, control_argv, run_stylize
from jaxnst.errors import JaxnstError
from jaxnst.record import read_record


def png_record(path: Path) -> dict:
    """The run record in a PNG jaxnst wrote (``jaxnst.record.read_record``), or a ``JaxnstError`` saying why there is
    none."""
    from PIL import Image, UnidentifiedImageError

    check_file(path, "image", "give a PNG that jaxnst wrote")
    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}).get("jaxnst")
    except (ValueError, Image.DecompressionBombError) as e:  # text over PngImagePlugin.MAX_TEXT_CHUNK, a huge image
        raise JaxnstError(
            f"{path}: Pillow refuses to read it ({e}): not a PNG jaxnst wrote, or its record is damaged"
        ) from None
    except (OSError, UnidentifiedImageError):
        text = None
    if text is None:
        raise JaxnstError(f"{path} has no jaxnst record: only PNGs written by jaxnst (not JPEGs) carry one")
    return read_record(text, str(path))


def _as_batch(rec: dict, out: Path, overwrite: bool, quiet: bool, bits: int = 8) -> None:
    """Runs again a record of the web page or ``jaxnst batch``: as the program that made it, a batch.
    The page's run is remade whole (its sweep is one batch program: one item alone would round
    differently), a ``jaxnst batch`` item as a batch of one at its bucket; ``out`` gets the item, at ``bits``."""
    import argparse
    import json

    from jaxnst.batch import grid_configs, stylize_batch
    from jaxnst.cli.common import add_config_flags, check_outputs, config_from_args, device_name, weights_from_args
    from jaxnst.config import INIT_CHOICES, parse_value, settings, style_size
    from jaxnst.image import load_image, save_image
    from jaxnst.record import make_record, setting_text
    from jaxnst.weights import weights_digest

    where = f"{rec['output']}'s record"
    p = Parser(prog="jaxnst reproduce")
    add_config_flags(p)
    cfg = config_from_args(p.parse_args(config_argv(rec["config"])))
    sweep, multiple = rec.get("sweep") or {}, None
    if rec["command"] == "batch":  # each item of a batch was one of its own program's items
        multiple, sweep = rec.get("bucket_multiple"), {}
        if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
            raise JaxnstError(f"{where} has no bucket multiple (an older jaxnst wrote it): run that batch again")
    if (
        not isinstance(sweep, dict)
        or len(sweep) > 1
        or any(k not in settings("sweep") or not isinstance(v, list) or len(v) > 3 for k, v in sweep.items())
    ):
        raise JaxnstError(f"{where} is damaged: its sweep is not one the page makes")
    values = {k: [parse_value(k, setting_text(v)) for v in vs] for k, vs in sweep.items()}
    configs = [c for _, c in grid_configs(cfg, values)]
    if cfg not in configs:
        raise JaxnstError(f"{where} is damaged: its settings are not one of its sweep's")
    inputs = {"content image": rec["content"], **{f"style image {s}": s for s in rec["styles"]}}
    coarse_paths = rec.get("style_coarse") or []
    inputs.update({f"coarse style {s}": s for s in coarse_paths})
    inputs["init image"] = cfg.init if cfg.init not in INIT_CHOICES else None
    check_outputs([out], inputs, overwrite)
    content = load_image(rec["content"], cfg.size)
    styles = [load_image(s, style_size(cfg)) for s in rec["styles"]]
    coarse = [load_image(s, style_size(cfg)) for s in coarse_paths]
    init_image = load_image(cfg.init) if inputs["init image"] else None
    args = argparse.Namespace(weights=rec["weights"], no_download=True, quiet=quiet)
    weights = weights_from_args(args, cfg)
    images = stylize_batch([content], [styles], weights, configs, multiple=multiple, init_image=init_image,
                           coarse_styles=[coarse] if coarse else None)  # fmt: skip
    extra = {name: rec[name] for name in ("run", "sweep", "bucket", "bucket_multiple") if name in rec}
    record = make_record(cfg, command=rec["command"], content=rec["content"], styles=rec["styles"],
                         weights=args.weights, weights_sha256=weights_digest(weights.params), device=device_name(),
                         output=out, style_coarse=coarse_paths, **extra)  # fmt: skip
    save_image(images[configs.index(cfg)], out, text={"jaxnst": json.dumps(record)}, bits=bits)


def main(argv: list[str]) -> int:
    import numpy as np

    from jaxnst.image import load_image, png_bit_depth

    p = Parser(prog="jaxnst reproduce", description="Run again what made a PNG, from the record jaxnst wrote into it.")
    p.add_argument("image", help="a PNG written by jaxnst")
    p.add_argument("-o", "--output", default=None, help="where the new run writes (default: IMAGE_reproduced.png)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--quiet", action="store_true", help="print only errors and the comparison")
    args = p.parse_args(argv)
    image = Path(args.image)
    rec = png_record(image)
    if "content" not in rec:  # the page's records before version 1
        raise JaxnstError(f"{image} was made on the web page by an older jaxnst, whose record holds only the settings: "
                          "start it again on the page with those")  # fmt: skip
    out = Path(args.output) if args.output else image.with_name(f"{image.stem}_reproduced.png")
    bits = png_bit_depth(image)  # written as it was, compared at its precision
    if rec["command"] != "stylize":
        _as_batch(rec, out, args.overwrite, args.quiet, bits)
    else:
        # Only the record's inputs and settings: the output and the other flags are this command's. Values go
        # after "=" and the images after "--", so that none is read as a flag.
        run_argv = ["-o", str(out), f"--bit-depth={bits}", f"--weights={rec['weights']}", *control_argv(rec),
                    *config_argv(rec["config"])]  # fmt: skip
        run_argv += ["--overwrite"] * args.overwrite + ["--quiet"] * args.quiet + ["--", rec["content"], *rec["styles"]]
        run_stylize(build_parser().parse_args(run_argv))
    new = png_record(out)
    top = 2**bits - 1
    a, b = (np.round(load_image(f) * top).astype(np.int32) for f in (image, out))
    same = a.shape == b.shape and np.array_equal(a, b)
    if same:
        say(f"{out} has the same pixels as {image}")
        return 0
    diff = f"max difference {np.abs(a - b).max()}/{top}" if a.shape == b.shape else f"shapes {a.shape} and {b.shape}"
    why = [f"{k}: {rec.get(k)} then, {new.get(k)} now" for k in ("jaxnst", "weights_sha256", "device")
           if rec.get(k) != new.get(k)]  # fmt: skip
    say(f"{out} differs from {image} ({diff}); {'; '.join(why) or 'same version, weights and device'}")
    return 1
