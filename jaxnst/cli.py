"""``jaxnst CONTENT STYLE [STYLE ...] -o out.png``: a thin layer over ``jaxnst.stylize``.

Flags and their defaults come from ``Config``; this module owns messages,
the progress bar, files and exit codes (2 for any user error, one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import typing

from jaxnst.config import Config, validate
from jaxnst.errors import JaxnstError

RANDOM_WARNING = (
    "WARNING: --weights random: seeded random VGG weights, NOT pretrained. "
    "The output only exercises the pipeline; it is not a real style transfer."
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + error
        raise JaxnstError(f"{message} (see {self.prog} --help)")


def _csv(kind):
    def parse(text):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None

    parse.__name__ = f"comma-separated {kind.__name__}s"
    return parse


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per ``Config`` field, with the field's help, type, choices and default."""
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in skip:
            continue
        hint, kw = hints[f.name], {}
        if typing.get_origin(hint) is typing.Literal:
            kw = {"choices": typing.get_args(hint), "type": str}
        elif f.name == "style_blend_weights":
            kw = {"type": _csv(float), "metavar": "W,W,..."}
        elif isinstance(f.default, tuple):
            kw = {"type": _csv(str), "metavar": "LAYER,..."}
        else:
            kw = {"type": type(f.default), "metavar": {int: "N", float: "X", str: "S"}[type(f.default)]}
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        parser.add_argument(
            "--" + f.name.replace("_", "-"), default=f.default, help=f"{f.metadata['help']} (default: {shown})", **kw
        )


def add_weights_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="VGG weight file (.h5: jaxnst, Keras notop or flaxmodels), or 'random' for seeded "
        "NOT-pretrained weights (default: the file in $JAXNST_HOME, ~/.cache/jaxnst)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    return validate(Config(**{k: v for k, v in vars(args).items() if k in names}))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="jaxnst",
        description="Neural style transfer (Gatys et al.) in JAX: paint CONTENT in the style of STYLE.",
    )
    p.add_argument("content", help="content image (PNG/JPEG/...)")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", default="out.png", metavar="PATH", help="output PNG or JPEG (default: out.png)")
    add_weights_flag(p)
    add_config_flags(p)
    p.add_argument(
        "--save-every",
        type=int,
        metavar="N",
        default=0,
        help="also save OUTPUT_STEP.png every N steps (default: 0, off)",
    )
    p.add_argument(
        "--print-every", type=int, metavar="N", default=50, help="print the losses every N steps (default: 50)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or loss lines, only errors")
    return p


def _device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind}, {jax.device_count()} device{'s' * (jax.device_count() > 1)})"


def run_stylize(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from jaxnst.image import check_output_path, load_image, save_image
    from jaxnst.stylize import stylize
    from jaxnst.weights import get_weights

    cfg = config_from_args(args)
    for name, v in (("--save-every", args.save_every), ("--print-every", args.print_every)):
        if v < 0:
            raise JaxnstError(f"{name} {v} must be >= 0")
    out = check_output_path(args.output)
    content = load_image(args.content, cfg.size)
    h, w, _ = content.shape
    styles = [load_image(s, max(16, round(cfg.size * cfg.style_scale))) for s in args.styles]
    init_image = None
    if cfg.init not in ("content", "noise", "style"):
        init_image = load_image(cfg.init)
    weights = get_weights(args.weights, cfg.model, cfg.seed)
    if args.weights == "random":
        print(RANDOM_WARNING, file=sys.stderr)
    say = (lambda *a: None) if args.quiet else (lambda msg: tqdm.write(msg, file=sys.stderr))
    say(f"jaxnst: {w}x{h} px, {cfg.steps} {cfg.optimizer} steps, {cfg.model} from {weights.source}, on {_device()}")

    every = math.gcd(args.print_every or cfg.steps or 1, args.save_every or cfg.steps or 1)
    every = max(1, min(every, 10))  # keep the bar moving even with rare prints
    bar = tqdm(total=cfg.steps, unit="step", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    first = {}

    def callback(p):
        bar.update(p.step - bar.n)
        bar.set_postfix(loss=f"{p.loss:.4g}", refresh=False)
        first.setdefault("t", p.elapsed)
        first.setdefault("step", p.step)
        if args.print_every and (p.step % args.print_every == 0 or p.done) and not args.quiet:
            t = p.terms()
            say(
                f"step {p.step:5d}/{p.steps}  loss {p.loss:.5g}  content {t['content']:.4g}  "
                f"style {t['style']:.4g}  tv {t['tv']:.4g}"
            )
        if args.save_every and p.step % args.save_every == 0 and not p.done:
            save_image(p.image, out.with_name(f"{out.stem}_{p.step}{out.suffix}"))
        if p.done:
            first["last"] = p

    t0 = time.perf_counter()
    image = stylize(content, styles, weights, cfg, callback=callback, every=every, init_image=init_image)
    save_image(image, out)
    bar.close()
    wall = time.perf_counter() - t0
    p = first.get("last")
    steps = p.step if p else 0
    steady = (p.elapsed - first["t"]) / (steps - first["step"]) if p and steps > first["step"] else float("nan")
    reason = p.reason if p else "no steps"
    print(
        f"jaxnst: wrote {out} ({w}x{h}) after {steps} steps in {wall:.1f} s "
        f"({steady:.3f} s/step after compile) on {_device()}; stopped: {reason}",
        file=sys.stderr,
    )


# Subcommands live in their own modules, each with ``main(argv)`` that raises
# ``JaxnstError`` for user errors; they are imported only when used.
SUBCOMMANDS: dict[str, str] = {"batch": "jaxnst.batch_cli"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]) or 0
        run_stylize(build_parser().parse_args(argv))
    except JaxnstError as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxnst: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
