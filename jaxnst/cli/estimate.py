"""``jaxnst estimate CONTENT STYLE [...]``: the peak memory of the compiled step, before running it."""

from __future__ import annotations

import argparse
import sys

from jaxnst.cli.common import Parser, add_config_flags, config_from_args, say
from jaxnst.config import style_size


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="jaxnst estimate",
        description="Report the peak memory of the compiled style-transfer loop for these images and flags "
        "(XLA's ahead-of-time memory analysis), and the device's free memory. Nothing is optimised.",
    )
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    add_config_flags(p)
    return p


def main(argv: list[str]) -> int:
    import jax

    from jaxnst.image import fit_long_side, image_size
    from jaxnst.memory import estimate, free_bytes

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    cw, ch = fit_long_side(image_size(args.content), cfg.size)
    style_hw = [fit_long_side(image_size(s), style_size(cfg))[::-1] for s in args.styles]
    say(f"compiling the step for {cw}x{ch} to read its memory (tens of seconds on a CPU; nothing is run)...")
    est = estimate((ch, cw), style_hw, cfg)
    mib = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    d = jax.devices()[0]
    print(
        f"{cw}x{ch} px, {cfg.model} {cfg.precision}{' remat' if cfg.remat else ''}, {cfg.optimizer}: "
        f"peak {mib(est.peak)} (arguments {mib(est.arguments)}, temporaries {mib(est.temporaries)}, "
        f"outputs {mib(est.outputs)}, reused {mib(est.aliased)}); free on {d.platform} ({d.device_kind}): "
        f"{mib(free_bytes(d))}"
    )
    sys.stdout.flush()
    return 0
