"""``jaxnst reproduce OUT.png``: run again what made a PNG, from the record jaxnst wrote into it.

The record (a ``jaxnst`` text chunk, see ``jaxnst.cli.stylize.run_record``) holds the absolute paths of the
images and weights, the weights' SHA-256, every ``Config`` field and the device. The run is the
single-image command with exactly those flags; the result is compared pixel by pixel. On the
same backend, jaxnst version and weights it is the same image (exit 0); otherwise the command
says what differs (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from jaxnst.cli.common import Parser, config_argv, say
from jaxnst.cli.stylize import build_parser, control_argv, run_stylize
from jaxnst.errors import JaxnstError


def read_record(path: Path) -> dict:
    """The run record in a PNG jaxnst wrote, or a ``JaxnstError`` saying why there is none."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise JaxnstError(f"{path} does not exist: give a PNG that jaxnst wrote")
    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}).get("jaxnst")
    except (OSError, UnidentifiedImageError):
        text = None
    if text is None:
        raise JaxnstError(f"{path} has no jaxnst record: only PNGs written by jaxnst (not JPEGs) carry one")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise JaxnstError(f"{path}: its jaxnst record is damaged") from None


def main(argv: list[str]) -> int:
    import numpy as np
    from PIL import Image

    p = Parser(prog="jaxnst reproduce", description="Run again what made a PNG, from the record jaxnst wrote into it.")
    p.add_argument("image", help="a PNG written by jaxnst")
    p.add_argument("-o", "--output", default=None, help="where the new run writes (default: IMAGE_reproduced.png)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--quiet", action="store_true", help="print only errors and the comparison")
    args = p.parse_args(argv)
    image = Path(args.image)
    rec = read_record(image)
    if rec.get("command") == "batch":
        raise JaxnstError(
            f"{image} was made by jaxnst batch, optimised at its bucket's shape {rec.get('bucket')}: run that batch "
            "again (its record lists the settings); a single run would differ"
        )
    out = Path(args.output) if args.output else image.with_name(f"{image.stem}_reproduced.png")
    run_argv = [rec["content"], *rec["styles"], "-o", str(out), "--weights", rec["weights"], *control_argv(rec)]
    run_argv += config_argv(rec["config"]) + ["--overwrite"] * args.overwrite + ["--quiet"] * args.quiet
    run_stylize(build_parser().parse_args(run_argv))
    new = read_record(out)
    a, b = (np.asarray(Image.open(f).convert("RGB"), np.int16) for f in (image, out))
    same = a.shape == b.shape and np.array_equal(a, b)
    if same:
        say(f"{out} has the same pixels as {image}")
        return 0
    diff = f"max difference {np.abs(a - b).max()}/255" if a.shape == b.shape else f"shapes {a.shape} and {b.shape}"
    why = [f"{k}: {rec.get(k)} then, {new.get(k)} now" for k in ("jaxnst", "weights_sha256", "device")
           if rec.get(k) != new.get(k)]  # fmt: skip
    say(f"{out} differs from {image} ({diff}); {'; '.join(why) or 'same version, weights and device'}")
    return 1
