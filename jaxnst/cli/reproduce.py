"""``jaxnst reproduce OUT.png``: run again what made a PNG, from the record jaxnst wrote into it.

The record (a ``jaxnst`` text chunk, ``jaxnst.record``) holds the absolute paths of the
images and weights, the weights' SHA-256, every ``Config`` field and the device. The run is the
single-image command with exactly those flags; the result is compared pixel by pixel. On the
same backend, jaxnst version and weights it is the same image (exit 0); otherwise the command
says what differs (exit 1).
"""

from __future__ import annotations

from pathlib import Path

from jaxnst.cli.common import Parser, config_argv, say
from jaxnst.cli.stylize import build_parser, control_argv, run_stylize
from jaxnst.errors import JaxnstError
from jaxnst.record import read_record


def png_record(path: Path) -> dict:
    """The run record in a PNG jaxnst wrote (``jaxnst.record.read_record``), or a ``JaxnstError`` saying why there is
    none."""
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
    return read_record(text, str(path))


# Records this command does not run again: why, and what to do instead.
ELSEWHERE = {
    "batch": "was made by jaxnst batch, optimised at its bucket's shape {bucket}: run that batch again (its record "
    "lists the settings); a single run would differ",
    "serve": "was made on the web page (jaxnst serve, run {run}), which runs its images as one batch program: start "
    "it again on the page with the settings its record lists; a single run would differ",
}


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
    rec = png_record(image)
    if rec["command"] in ELSEWHERE:
        raise JaxnstError(f"{image} " + ELSEWHERE[rec["command"]].format(bucket=rec.get("bucket"), run=rec.get("run")))
    out = Path(args.output) if args.output else image.with_name(f"{image.stem}_reproduced.png")
    # Only the record's inputs and settings: the output and the other flags are this command's. Values go
    # after "=" and the images after "--", so that none is read as a flag.
    run_argv = ["-o", str(out), f"--weights={rec['weights']}", *control_argv(rec), *config_argv(rec["config"])]
    run_argv += ["--overwrite"] * args.overwrite + ["--quiet"] * args.quiet + ["--", rec["content"], *rec["styles"]]
    run_stylize(build_parser().parse_args(run_argv))
    new = png_record(out)
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
