"""``jaxnst CONTENT STYLE [STYLE ...] -o out.png``: a thin layer over ``jaxnst.stylize``.

Flags and their defaults come from ``Config``; this module owns the command's messages,
the progress bar, files, checkpoints, signals and exit codes (2 for any user error, one line).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import signal
import sys
import time
from pathlib import Path

from jaxnst.cli.common import (
    STARTED,
    SUBCOMMANDS,
    Parser,
    add_config_flags,
    add_weights_flag,
    check_outputs,
    config_from_args,
    device_name,
    enable_compilation_cache,
    say,
    weights_from_args,
)
from jaxnst.config import INIT_CHOICES, Config, flag, scale_schedule, style_size
from jaxnst.errors import JaxnstError


def build_parser() -> argparse.ArgumentParser:
    from jaxnst import __version__

    p = Parser(
        prog="jaxnst",
        description="Neural style transfer (Gatys et al.) in JAX: paint CONTENT in the style of STYLE.",
        epilog="Other commands: " + ", ".join(f"jaxnst {name} --help" for name in SUBCOMMANDS),
    )
    p.add_argument("content", help="content image (PNG/JPEG/...)")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", default="out.png", metavar="PATH", help="output PNG or JPEG (default: out.png)")
    p.add_argument(
        "--style-coarse",
        nargs="+",
        metavar="STYLE",
        default=None,
        help="take the coarse structure from these images: the style layers after --split-layer match them, "
        "the layers up to it the style image(s)",
    )
    p.add_argument(
        "--content-masks",
        nargs="+",
        metavar="MASK",
        default=None,
        help="paint regions in different styles: one mask per style image, in order (grayscale, white = the "
        "region of that style, gray = partly; the content's aspect ratio)",
    )
    p.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        default=None,
        help="with --content-masks: per style image a mask of the part its region copies, or none for all of it",
    )
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
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        default=0,
        help="also save the run's state to OUTPUT.ckpt.npz every N steps and at the end, for --resume "
        "(default: 0, off; Ctrl-C and SIGTERM save it anyway)",
    )
    p.add_argument(
        "--resume",
        metavar="CKPT",
        default=None,
        help="continue the run saved in CKPT (OUTPUT.ckpt.npz) to --steps in all: the same pixels as an "
        "uninterrupted run; give the same images and flags (only --steps may differ)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT (and its snapshots) if they exist")
    p.add_argument(
        "--time-budget",
        type=float,
        default=30.0,
        metavar="MIN",
        help="with --size auto, the largest size estimated to finish within MIN minutes (default: 30)",
    )
    p.add_argument(
        "--trace",
        metavar="PATH",
        default=None,
        help="also write a JSON trace: the run's record, the loss after every block, the final terms, why it stopped",
    )
    p.add_argument(
        "--web",
        type=int,
        nargs="?",
        const=8765,
        default=None,
        metavar="PORT",
        help="also show the run live on a local web page, http://127.0.0.1:PORT/ (default 8765; needs "
        'pip install "jaxnst[web]"; jaxnst serve runs several)',
    )
    p.add_argument("--version", action="version", version=f"jaxnst {__version__}")
    p.add_argument("--quiet", action="store_true", help="print only errors and the not-pretrained warning")
    return p


def _auto_size(args: argparse.Namespace) -> int:
    from jaxnst.image import image_size
    from jaxnst.memory import MARGIN, auto_size, free_bytes, run_seconds, size_for_time

    args.size = Config.size  # a placeholder that validates; auto_size sets the real one
    cfg = config_from_args(args)
    if not args.time_budget > 0:
        raise JaxnstError(f"--time-budget {args.time_budget} must be a positive number of minutes")
    content, styles = image_size(args.content), [image_size(s) for s in args.styles]
    if not args.quiet:
        say("--size auto: timing a step at 256 px and estimating the memory of a few sizes...")
    free = free_bytes()
    by_memory, est = auto_size(content, styles, cfg, int(free * MARGIN))
    by_time, t256 = size_for_time(content, styles, cfg, args.time_budget * 60)
    size = min(by_memory, by_time)
    if not args.quiet:
        minutes = run_seconds(dataclasses.replace(cfg, size=size), t256) / 60
        limit = "memory" if by_memory <= by_time else f"--time-budget {args.time_budget:g} min"
        say(
            f"--size auto: {size} px, set by {limit} (memory allows {by_memory} px: peak {est.peak / 2**20:.0f} MiB "
            f"of {free / 2**20:.0f} MiB free, {MARGIN:.0%} used at most; the run takes about {minutes:.0f} min here)"
        )
    return size


# The perceptual controls' flags: the record keeps their absolute paths, so that `jaxnst reproduce` can give them again.
CONTROL_FLAGS = {"style_coarse": "--style-coarse", "content_masks": "--content-masks", "style_masks": "--style-masks"}


def control_argv(record: dict) -> list[str]:
    """The flags of the perceptual controls in a run record (``jaxnst.record.read_record`` checked them: absolute
    paths, or none, so that none is read as a flag)."""
    return [arg for name, opt in CONTROL_FLAGS.items() if record.get(name) for arg in (opt, *record[name])]


def _web_page(args: argparse.Namespace, cfg: Config, w: int, h: int):
    """``--web``: a page on 127.0.0.1 that follows this run (``jaxnst.web``); (runner, run)."""
    import tempfile
    import threading

    from jaxnst.cli.serve import check_port, web_extra

    uvicorn, make_app = web_extra("--web")
    from jaxnst.web.runs import SETTINGS, Runner

    check_port("127.0.0.1", args.web, "--web")
    runner = Runner(tempfile.mkdtemp(prefix="jaxnst-web-"), None, device_name())
    run = runner.watch({name: getattr(cfg, name) for name in SETTINGS})
    run.shape, run.coarse = (h, w), len(args.style_coarse or ())
    # No logging set-up of its own: the run's messages stay the CLI's, on whatever stderr is at the time.
    config = uvicorn.Config(make_app(runner), host="127.0.0.1", port=args.web, log_level="warning", log_config=None)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="jaxnst-web", daemon=True).start()
    say(f"jaxnst: watch it paint at http://127.0.0.1:{args.web}/ (the page closes when the run ends)")
    return runner, run


def _check_controls(args: argparse.Namespace, blend) -> None:
    from jaxnst.stylize import check_masks

    check_masks(args.content_masks, args.style_masks, len(args.styles))  # the library's check, before any read
    if args.content_masks and (args.style_coarse or blend is not None):
        other = "--style-coarse" if args.style_coarse else "--style-blend-weights"
        raise JaxnstError(f"{other} with --content-masks: each region takes one style image; drop one of them")
    for m in args.style_masks or ():
        if m != "none" and not Path(m).exists():
            raise JaxnstError(f"style mask {m} does not exist: give a mask image, or none for all of that style")


def _check_styles_are_not_the_output(styles: list[str], out: Path) -> None:
    # `jaxnst content.jpg style.jpg out.png` reads out.png as a second style; say where the
    # output goes instead of failing on a missing image or blending in last run's result.
    for i, s in enumerate(styles):
        p = Path(s)
        missing = i > 0 and not p.exists()
        if missing or (p.exists() and p.resolve() == out.resolve()):
            why = "does not exist" if missing else "is also the output file"
            raise JaxnstError(
                f"style image {s} {why}: to write the result there, use -o {s} (jaxnst CONTENT STYLE -o OUT)"
            )


class Interrupted(Exception):
    """The run stopped on a signal after saving; ``main`` exits with 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_requests():
    """While inside, SIGINT and SIGTERM ask the run to stop at the end of its block (a dict gets
    ``signum``); a second one quits at once (``KeyboardInterrupt``)."""
    got: dict = {}

    def handler(signum, frame):
        if got:
            raise KeyboardInterrupt
        got["signum"] = signum
        say(f"{signal.Signals(signum).name}: saving at the end of this block (again to quit without saving)")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _check_resume(meta: dict, now: dict, path: str) -> None:
    """The checkpoint ``meta`` is of this run: same config (but steps) and weights."""
    was, is_ = meta["config"], now["config"]
    differ = [k for k in is_ if k != "steps" and was.get(k) != is_[k]]
    if differ:
        k = differ[0]
        raise JaxnstError(
            f"checkpoint {path} was made with {flag(k)} {was.get(k)}, this run has {is_[k]}: "
            "give the same flags (only --steps may change)"
        )
    if meta["weights_sha256"] != now["weights_sha256"]:
        raise JaxnstError(f"checkpoint {path} was made with other weights: give the --weights of that run")


def _cause(cfg: Config, p) -> str:
    """The likely cause of a run that went non-finite or did not move, from the losses at its image."""
    terms = p.terms()
    bad = [k for k, v in terms.items() if not math.isfinite(v)]
    if bad:
        return f"the {bad[0]} loss of the image itself is {terms[bad[0]]}: a weight file or an image holds NaN or inf"
    if cfg.optimizer == "adam" and cfg.lr > 0.5:
        return f"--lr {cfg.lr} is likely too large; try 0.02"
    weighted = {term: getattr(cfg, f"{term}_weight") * v for term, v in terms.items()}
    term = max(weighted, key=lambda t: abs(weighted[t]))
    name, value = flag(f"{term}_weight"), getattr(cfg, f"{term}_weight")
    return f"{name} {value:g} makes the {term} term {weighted[term]:.3g}, too large to optimise; try a smaller {name}"


def _save(image, out: Path, record: dict) -> None:
    """``save_image`` with ``record`` in the PNG; if the output cannot be written, the result is
    kept in ``$JAXNST_HOME/rescued``."""
    from jaxnst.hub import cache_dir
    from jaxnst.image import save_image

    text = {"jaxnst": json.dumps(record)}
    try:
        save_image(image, out, text=text)
    except OSError as e:
        rescued = cache_dir() / "rescued" / out.name
        rescued.parent.mkdir(parents=True, exist_ok=True)
        save_image(image, rescued, text=text)
        raise JaxnstError(f"could not write {out} ({e.strerror}); the result is in {rescued}") from None


def run_stylize(args: argparse.Namespace) -> None:
    import jax
    import numpy as np
    from tqdm import tqdm

    from jaxnst._files import atomic_path
    from jaxnst.checkpoint import load_checkpoint, read_meta, save_checkpoint
    from jaxnst.engine import STOP_NONFINITE
    from jaxnst.image import check_output_path, load_image, load_mask, save_image
    from jaxnst.record import make_record, read_record
    from jaxnst.stylize import check_image_sizes, scale_shapes, stylize
    from jaxnst.weights import weights_digest

    cfg = config_from_args(args) if args.size != "auto" else None  # bad flags fail before anything is read
    for name, v in (("--save-every", args.save_every), ("--print-every", args.print_every),
                    ("--checkpoint-every", args.checkpoint_every)):  # fmt: skip
        if v < 0:
            raise JaxnstError(f"{name} {v} must be >= 0")
    blend = cfg.style_blend_weights if cfg else None
    if blend is not None and len(blend) != len(args.styles):
        raise JaxnstError(f"{len(blend)} --style-blend-weights for {len(args.styles)} style images: give one per style")
    _check_controls(args, blend)
    out = check_output_path(args.output)
    _check_styles_are_not_the_output(args.styles, out)
    ckpt = out.with_suffix(".ckpt.npz")
    meta = read_record(read_meta(args.resume), args.resume) if args.resume else None
    # A resumed run replaces what its interrupted part wrote.
    overwrite = args.overwrite or bool(meta and Path(meta["output"]) == out.resolve())
    snapshot = lambda k: out.with_name(f"{out.stem}_{k}{out.suffix}")  # noqa: E731

    def snapshots(cfg):  # every --save-every steps, counted over all scales
        total = sum(n for _, n in scale_schedule(cfg))
        return [snapshot(k) for k in range(args.save_every, total, args.save_every)] if args.save_every else []

    inputs = {"content image": args.content, **{f"style image {s}": s for s in args.styles}}
    inputs.update({f"coarse style {s}": s for s in args.style_coarse or ()})
    inputs.update({f"content mask {m}": m for m in args.content_masks or ()})
    inputs.update({f"style mask {m}": m for m in args.style_masks or () if m != "none"})
    inputs["init image"] = args.init if args.init not in INIT_CHOICES else None
    if inputs["init image"] and not Path(args.init).exists():
        raise JaxnstError(f"--init {args.init}: give {', '.join(INIT_CHOICES)}, or the path of an image file")
    trace_path = Path(args.trace) if args.trace else None
    check_outputs([out, *(snapshots(cfg) if cfg else []), *([trace_path] if trace_path else [])], inputs, overwrite)
    if ckpt.exists() and not overwrite and not (args.resume and Path(args.resume).resolve() == ckpt.resolve()):
        raise JaxnstError(f"{ckpt} exists (an earlier run's checkpoint): --resume it, or add --overwrite")

    cache = enable_compilation_cache()  # before anything compiles
    if args.size == "auto" and meta:  # the size the interrupted run picked, not a new pick
        args.size = meta["config"].get("size", Config.size)
        cfg = config_from_args(args)
    if args.size == "auto":
        args.size = _auto_size(args)
        cfg = config_from_args(args)
        if args.save_every:
            check_outputs(snapshots(cfg), inputs, overwrite)
    content = load_image(args.content, cfg.size)
    h, w, _ = content.shape
    styles = [load_image(s, style_size(cfg)) for s in args.styles]
    coarse = [load_image(s, style_size(cfg)) for s in args.style_coarse or ()]
    content_masks = [load_mask(m, (h, w), "content mask") for m in args.content_masks] if args.content_masks else None
    style_masks = None
    if args.style_masks:
        style_masks = [None if m == "none" else load_mask(m, s.shape[:2], "style mask")
                       for m, s in zip(args.style_masks, styles, strict=True)]  # fmt: skip
    init_image = None
    if cfg.init not in INIT_CHOICES:
        init_image = load_image(cfg.init)
    check_image_sizes(cfg, [content.shape], [s.shape for s in styles + coarse])  # before the bar, not inside stylize
    weights = weights_from_args(args, cfg)
    log = (lambda *a: None) if args.quiet else (lambda msg: tqdm.write(msg, file=sys.stderr))
    # Hashing the weights takes a moment: only when a record is written.
    record = functools.cache(
        lambda: make_record(
            cfg, command="stylize", content=args.content, styles=args.styles, weights=args.weights,
            weights_sha256=weights_digest(weights.params), device=device_name(), output=out,
            style_coarse=args.style_coarse or (), content_masks=args.content_masks or (),
            style_masks=args.style_masks or (),
        )
    )  # fmt: skip
    schedule = scale_schedule(cfg)
    total = sum(n for _, n in schedule)
    offsets = [sum(n for _, n in schedule[:k]) for k in range(len(schedule))]  # steps before each scale
    state = None
    if meta:
        from jaxnst.stylize import start

        _check_resume(meta, record(), args.resume)
        k = meta.get("scale", 0)
        shapes = scale_shapes(cfg, content.shape[:2], [s.shape[:2] for s in styles])
        if k not in range(len(shapes)) or isinstance(k, bool):
            raise JaxnstError(f"checkpoint {args.resume}: scale {k!r} is not one of this run's {len(shapes)} scales")
        template = jax.eval_shape(lambda x: start(x, cfg), jax.ShapeDtypeStruct((1, *shapes[k][0], 3), np.float32))
        state, _ = load_checkpoint(args.resume, template)
        log(f"jaxnst: resuming {args.resume} at step {offsets[k] + int(state.step)}")
    steps = f"{cfg.steps} {cfg.optimizer} steps"
    if len(schedule) > 1:
        sides = ", ".join(str(side) for side, _ in schedule)
        first = schedule[0][1]
        steps = f"scales {sides} px, {total} {cfg.optimizer} steps ({first} at the first, {cfg.steps} at each other)"
    log(f"jaxnst: {w}x{h} px, {steps}, {cfg.model} from {weights.source}, on {device_name()}")
    kept = f"kept in {cache} for the next run of this size" if cache else "not kept: JAXNST_COMPILATION_CACHE=0"
    sizes = f"{w}x{h}" if len(schedule) == 1 else f"each scale, the first at {schedule[0][0]} px"
    log(f"jaxnst: compiling the targets and the step for {sizes} ({kept})...")

    # Steps per dispatch: every print, save and checkpoint falls on a block's end (gcd(n, 0) = n),
    # and at most 10 so the bar keeps moving. The first block is one step (the bar moves as soon as
    # the step is compiled), the others end at multiples of ``every``; the last wherever the run stops.
    every = min(math.gcd(math.gcd(args.print_every, args.save_every), args.checkpoint_every) or 10, 10)
    bar = tqdm(total=total, unit="step", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    seen = {"prev": offsets[k] + int(state.step) if state is not None else 0}  # steps done before this process

    def checkpoint(p):
        save_checkpoint(ckpt, p.state, {**record(), "scale": p.scale})

    losses = []

    def write_trace(p, reason):
        if trace_path:
            final = {"loss": p.loss, **p.terms()}
            steps = offsets[p.scale] + p.step
            trace = {**record(), "losses": losses, "final": final, "steps": steps, "stopped": reason}
            with atomic_path(trace_path) as tmp:
                Path(tmp).write_text(json.dumps(trace, indent=1, allow_nan=True) + "\n")

    def written(write, what):
        try:
            write()
        except OSError as e:  # the run goes on: only this file is missing
            log(f"jaxnst: warning: could not write {what} ({e.strerror}); going on")

    page = _web_page(args, cfg, w, h) if args.web is not None else None

    def callback(p):
        g = offsets[p.scale] + p.step  # steps over all scales
        if page is not None:
            runner, run = page
            now = {"status": "done", "message": f"wrote {out}"} if p.done else {
                "message": f"{p.image.shape[1]}x{p.image.shape[0]} px, writing {out}"}  # fmt: skip
            runner.update(run, p.image, p.loss, step=g, steps=total, scale=p.scale, scales=p.scales, **now)
        if "t" not in seen:  # the first block includes the compile: the bar's rate and ETA start after it
            bar.reset(total=total)
            bar.initial = bar.n = g
        bar.update(g - bar.n)
        if p.scales > 1:
            bar.set_description(f"{p.image.shape[1]}x{p.image.shape[0]}", refresh=False)
        bar.set_postfix(loss=f"{p.loss:.4g}", refresh=False)
        seen.setdefault("t", p.elapsed)
        seen.setdefault("step", g)
        seen.setdefault("first", time.perf_counter() - STARTED)
        seen.setdefault("first_image", p.image)
        losses.append({"step": g, "loss": p.loss, **({"scale": p.scale} if p.scales > 1 else {})})
        # Each N-th step over all scales; a block may end past it when scales do not split at multiples of N.
        crossed = lambda n: n and g // n > seen["prev"] // n  # noqa: E731
        at = f" at {p.image.shape[1]}x{p.image.shape[0]}" if p.scales > 1 else ""
        if (crossed(args.print_every) or (args.print_every and p.done)) and not args.quiet:
            t = p.terms()
            log(
                f"step {g:5d}/{total}{at}  loss {p.loss:.5g}  content {t['content']:.4g}  "
                f"style {t['style']:.4g}  tv {t['tv']:.4g}"
            )
        if crossed(args.save_every) and not p.done:
            k = g // args.save_every * args.save_every
            written(lambda: save_image(p.image, snapshot(k)), f"the snapshot at step {k}")
        if crossed(args.checkpoint_every) or (args.checkpoint_every and p.done):
            written(lambda: checkpoint(p), f"the checkpoint at step {g}")
        seen["prev"] = g
        if p.done:
            seen["last"] = p
        elif stop.get("signum"):
            bar.close()
            name = signal.Signals(stop["signum"]).name
            _save(p.image, out, record())
            checkpoint(p)
            write_trace(p, f"stopped by {name}")
            say(f"stopped by {name} at step {g}/{total}: wrote {out} and {ckpt}; to go on, run the same "
                f"command with --resume {ckpt}")  # fmt: skip
            raise Interrupted(stop["signum"])

    t0 = time.perf_counter()
    try:
        with stop_requests() as stop:
            image = stylize(content, styles, weights, cfg, callback=callback, every=every, init_image=init_image,
                            state=state, coarse_styles=coarse, content_masks=content_masks,
                            style_masks=style_masks)  # fmt: skip
    except Exception as e:  # XLA's out-of-memory error is a runtime error like any other; only it is the user's
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        bar.close()
        raise JaxnstError(
            f"out of memory at --size {cfg.size} ({w}x{h} px) on {device_name()}: use a smaller --size, "
            "or --precision bf16, or --remat (`jaxnst estimate` says what fits)"
        ) from None
    bar.close()
    p = seen.get("last")
    if p is not None and p.stop == STOP_NONFINITE and p.step == 0 and p.scale == 0:
        raise JaxnstError(
            f"the loss became NaN or infinite at the first step, so nothing was written: {_cause(cfg, p)}"
        )
    steps = offsets[p.scale] + p.step if p else 0
    if p is not None and steps > seen["step"] and np.array_equal(seen["first_image"], p.image):
        raise JaxnstError(f"the image did not change in {steps} steps, so nothing was written: {_cause(cfg, p)}")
    _save(image, out, record())
    if p is not None:
        write_trace(p, p.reason)
    if p is not None and p.stop == STOP_NONFINITE:
        say(f"warning: the loss became NaN or infinite at step {steps + 1}; wrote the image of step {steps}: "
            f"{_cause(cfg, p)}")  # fmt: skip
    wall = time.perf_counter() - t0
    # The first block includes the compile; with one block there is no steady rate to report.
    steady = ""
    if p and steps > seen["step"]:
        steady = f" ({(p.elapsed - seen['t']) / (steps - seen['step']):.3f} s/step after compile)"
    reason = p.reason if p else "no steps"
    if "first" in seen:  # what a user waits before anything moves: start-up, targets, compile, one step
        first = "first step" if seen["step"] == 1 else f"first {seen['step']} steps"
        steady += f"; {first} done {seen['first']:.1f} s after start"
    where = f"on {device_name()}; stopped: {reason}"
    log(f"jaxnst: wrote {out} ({w}x{h}) after {steps} steps in {wall:.1f} s{steady} {where}")
