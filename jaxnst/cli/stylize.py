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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxnst.cli.common import (
    STARTED,
    SUBCOMMANDS,
    Parser,
    add_bit_depth_flag,
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
    add_bit_depth_flag(p)
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
        say(
            "--size auto: timing a step at 256 px and estimating the memory of a few sizes (a minute or so on a CPU)..."
        )
    t0 = time.perf_counter()
    free = free_bytes()
    by_memory, est = auto_size(content, styles, cfg, int(free * MARGIN))
    by_time, t256 = size_for_time(content, styles, cfg, args.time_budget * 60)
    size = min(by_memory, by_time)
    if not args.quiet:
        minutes = run_seconds(dataclasses.replace(cfg, size=size), t256) / 60
        limit = "memory" if by_memory <= by_time else f"--time-budget {args.time_budget:g} min"
        say(
            f"--size auto: {size} px, set by {limit} (memory allows {by_memory} px: peak {est.peak / 2**20:.0f} MiB "
            f"of {free / 2**20:.0f} MiB free, {MARGIN:.0%} used at most; the run takes about {minutes:.0f} min here, "
            f"after the {time.perf_counter() - t0:.0f} s this choice took)"
        )
    return size


# The perceptual controls' flags: the record keeps their absolute paths, so that `jaxnst reproduce` can give them again.
CONTROL_FLAGS = {"style_coarse": "--style-coarse", "content_masks": "--content-masks", "style_masks": "--style-masks"}


def control_argv(record: dict) -> list[str]:
    """The flags of the perceptual controls in a run record (``jaxnst.record.read_record`` checked them: absolute
    paths, or none, so that none is read as a flag)."""
    return [arg for name, opt in CONTROL_FLAGS.items() if record.get(name) for arg in (opt, *record[name])]


def _web_page(args: argparse.Namespace, cfg: Config, w: int, h: int):
    """``--web``: a page on 127.0.0.1 that follows this run (``jaxnst.web``), behind a token as ``jaxnst serve``'s;
    (runner, run). ``_plan`` checked the extra and the port."""
    import atexit
    import secrets
    import shutil
    import tempfile
    import threading

    from jaxnst.cli.serve import page_url, web_extra
    from jaxnst.web.runs import SETTINGS, Runner

    uvicorn, make_app = web_extra("--web")
    folder = tempfile.mkdtemp(prefix="jaxnst-web-")  # the page's copy of the run: gone with the process
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    runner = Runner(folder, None, device_name())
    run = runner.watch({name: getattr(cfg, name) for name in SETTINGS})
    run.shape, run.coarse = (h, w), len(args.style_coarse or ())
    token = secrets.token_urlsafe()
    # No logging set-up of its own: the run's messages stay the CLI's, on whatever stderr is at the time.
    app = make_app(runner, token=token)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.web, log_level="warning", log_config=None)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="jaxnst-web", daemon=True).start()
    say(
        f"watch it paint at {page_url('127.0.0.1', args.web, token)} (the page closes when the run ends; "
        "`jaxnst serve` keeps one open)"
    )
    return runner, run


def _check_styles_are_not_the_output(styles: list[str], out: Path) -> None:
    # `jaxnst content.jpg style.jpg out.png` reads out.png as a second style; say where the
    # output goes instead of failing on a missing image or blending in last run's result.
    # The first style is a style: `-o` naming it is ``check_outputs``'s "give another -o".
    for i, s in enumerate(styles):
        p = Path(s)
        missing = i > 0 and not p.exists()
        if missing or (i > 0 and p.exists() and p.resolve() == out.resolve()):
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
    """While inside, SIGINT, SIGTERM and SIGHUP (a closed terminal) ask the run to stop at the end of its
    block (a dict gets ``signum``); a second one quits at once (``KeyboardInterrupt``)."""
    got: dict = {}

    def handler(signum, frame):
        if got:
            raise KeyboardInterrupt
        got["signum"] = signum
        say(f"{signal.Signals(signum).name}: saving at the end of this block (again to quit without saving)")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
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
    if cfg.optimizer == "adam" and cfg.lr < 1e-4:
        return f"--lr {cfg.lr:g} is too small to move the pixels; try 0.02"
    weighted = {term: getattr(cfg, f"{term}_weight") * v for term, v in terms.items()}
    term = max(weighted, key=lambda t: abs(weighted[t]))
    name, value = flag(f"{term}_weight"), getattr(cfg, f"{term}_weight")
    return f"{name} {value:g} makes the {term} term {weighted[term]:.3g}, too large to optimise; try a smaller {name}"


def _sha256(path: Path) -> str:
    from jaxnst.fetch import file_digests

    return file_digests(path)["sha256"]


def _save(image, out: Path, record: dict, bits: int = 8) -> None:
    """``save_image`` with ``record`` in the PNG, at ``bits`` per channel; if the output cannot be written, the
    result is kept in ``$JAXNST_HOME/rescued`` under a name no earlier rescue holds."""
    import os

    from jaxnst.hub import cache_dir
    from jaxnst.image import save_image

    text = {"jaxnst": json.dumps(record)}
    try:
        save_image(image, out, text=text, bits=bits)
    except OSError as e:
        folder = cache_dir() / "rescued"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(1, 10_000):  # claimed by creating it: two runs rescuing at once get two names
                rescued = folder / (out.name if n == 1 else f"{out.stem}_{n}{out.suffix}")
                try:
                    os.close(os.open(rescued, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    break
                except FileExistsError:
                    continue
            save_image(image, rescued, text=text, bits=bits)
        except OSError as e2:
            raise JaxnstError(f"could not write {out} ({e.strerror}), nor a copy in {folder} ({e2.strerror}): "
                              "free some space and run again") from None  # fmt: skip
        raise JaxnstError(f"could not write {out} ({e.strerror}); the result is in {rescued}") from None


def run_stylize(args: argparse.Namespace) -> None:
    """The main command: plan (flags and paths, checked before anything is read), load (images,
    weights, a resumed state), run the library with a reporter (bar, page, prints, files), finish."""
    plan = _plan(args)
    cache = enable_compilation_cache()  # before anything compiles
    run = _load(args, plan)
    report = _Report(args, plan, run, cache)
    t0 = time.perf_counter()
    # A signal after the last step still lets the finished image be written.
    with stop_requests() as report.stop:
        try:
            image = run.stylize(callback=report)
        except Exception as e:  # XLA's out-of-memory error is a runtime error like any other; only it is the user's
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            report.bar.close()
            raise JaxnstError(
                f"out of memory at --size {run.cfg.size} ({run.w}x{run.h} px) on {device_name()}: use a smaller "
                "--size, or --precision bf16, or --remat (`jaxnst estimate` says what fits)"
            ) from None
        report.bar.close()
        report.finish(image, time.perf_counter() - t0)


@dataclasses.dataclass
class _Plan:
    """What the flags ask for and where it goes, checked before any image or weight is read."""

    cfg: Config | None  # None while --size auto is undecided
    out: Path
    ckpt: Path  # the run's checkpoint, beside ``out``
    meta: dict | None  # the record of the checkpoint --resume continues
    overwrite: bool
    trace: Path | None
    inputs: dict[str, str | None]  # what each input is, for the messages

    def snapshot(self, k: int) -> Path:
        return self.out.with_name(f"{self.out.stem}_{k}{self.out.suffix}")

    def snapshots(self, cfg: Config, every: int) -> list[Path]:
        """The snapshots of every ``every`` steps, counted over all scales."""
        total = sum(n for _, n in scale_schedule(cfg))
        return [self.snapshot(k) for k in range(every, total, every)] if every else []


def _plan(args: argparse.Namespace) -> _Plan:
    from jaxnst.checkpoint import read_meta
    from jaxnst.image import check_output_path
    from jaxnst.single import check_masks

    cfg = config_from_args(args) if args.size != "auto" else None  # bad flags fail before anything is read
    for name, v in (("--save-every", args.save_every), ("--print-every", args.print_every),
                    ("--checkpoint-every", args.checkpoint_every)):  # fmt: skip
        if v < 0:
            raise JaxnstError(f"{name} {v} must be >= 0")
    blend = cfg.style_blend_weights if cfg else None
    if blend is not None and len(blend) != len(args.styles):
        raise JaxnstError(f"{len(blend)} --style-blend-weights for {len(args.styles)} style images: give one per style")
    check_masks(args.content_masks, args.style_masks, len(args.styles))  # the library's check, before any read
    if args.content_masks and (args.style_coarse or blend is not None):
        other = "--style-coarse" if args.style_coarse else "--style-blend-weights"
        raise JaxnstError(f"{other} with --content-masks: each region takes one style image; drop one of them")
    for m in args.style_masks or ():
        if m != "none" and not Path(m).exists():
            raise JaxnstError(f"style mask {m} does not exist: give a mask image, or none for all of that style")
    if args.web is not None:  # before the weights load and the compile
        from jaxnst.cli.serve import check_port, web_extra

        web_extra("--web")
        check_port("127.0.0.1", args.web, "--web")
    out = check_output_path(args.output, args.bit_depth)
    _check_styles_are_not_the_output(args.styles, out)
    meta = read_meta(args.resume) if args.resume else None
    # A resumed run replaces what its interrupted part wrote, if the file still holds it.
    ours = bool(meta and Path(meta["output"]) == out.resolve())
    if ours and out.is_file() and not args.overwrite and _sha256(out) != meta.get("output_sha256"):
        raise JaxnstError(f"{out} is not the image checkpoint {args.resume} left there (changed since?): add "
                          "--overwrite to replace it, or give another -o")  # fmt: skip
    overwrite = args.overwrite or ours
    inputs = {"content image": args.content, **{f"style image {s}": s for s in args.styles}}
    inputs.update({f"coarse style {s}": s for s in args.style_coarse or ()})
    inputs.update({f"content mask {m}": m for m in args.content_masks or ()})
    inputs.update({f"style mask {m}": m for m in args.style_masks or () if m != "none"})
    inputs["init image"] = args.init if args.init not in INIT_CHOICES else None
    if inputs["init image"] and not Path(args.init).exists():
        raise JaxnstError(f"--init {args.init}: give {', '.join(INIT_CHOICES)}, or the path of an image file")
    plan = _Plan(cfg, out, out.with_suffix(".ckpt.npz"), meta, overwrite, Path(args.trace) if args.trace else None,
                 inputs)  # fmt: skip
    if plan.trace and not plan.trace.parent.is_dir():
        raise JaxnstError(f"--trace folder {plan.trace.parent} does not exist: create it first")
    snapshots = plan.snapshots(cfg, args.save_every) if cfg else []
    check_outputs([out, *snapshots, *([plan.trace] if plan.trace else [])], inputs, overwrite)
    resuming_it = args.resume and Path(args.resume).resolve() == plan.ckpt.resolve()
    if plan.ckpt.exists() and not overwrite and not resuming_it:
        raise JaxnstError(f"{plan.ckpt} exists (an earlier run's checkpoint): --resume it, or add --overwrite")
    return plan


@dataclasses.dataclass
class _Run:
    """The loaded run: its settings, its inputs, the weights and where a resumed run starts."""

    cfg: Config
    content: Any  # (H, W, 3)
    stylize: Callable  # ``jaxnst.stylize`` with every input bound; takes ``callback``
    record: Callable[[], dict]  # the run record (hashing the weights takes a moment: only when written)
    source: str  # where the weights came from
    inputs_sha256: list  # of the content, styles, coarse styles, masks and start image files, in that order
    schedule: list  # (side, steps) per scale
    resumed: int  # steps taken before this process (a resumed run)

    @property
    def h(self) -> int:
        return self.content.shape[0]

    @property
    def w(self) -> int:
        return self.content.shape[1]

    def offset(self, scale: int) -> int:
        """Steps of the scales before ``scale``."""
        return sum(n for _, n in self.schedule[:scale])


def _load(args: argparse.Namespace, plan: _Plan) -> _Run:
    import jax
    import numpy as np

    from jaxnst.checkpoint import load_checkpoint
    from jaxnst.image import load_image, load_mask
    from jaxnst.record import make_record
    from jaxnst.single import check_image_sizes, scale_shapes, stylize
    from jaxnst.transfer import start
    from jaxnst.weights import weights_digest

    if args.size == "auto":  # the size an interrupted run picked, or a new pick
        args.size = plan.meta["config"].get("size", Config.size) if plan.meta else _auto_size(args)
        if args.save_every and not plan.meta:
            check_outputs(plan.snapshots(config_from_args(args), args.save_every), plan.inputs, plan.overwrite)
    cfg = config_from_args(args)
    if not sum(n for _, n in scale_schedule(cfg)):
        raise JaxnstError("--steps 0 (and no --initial-steps) would write the start image unchanged: give --steps N")
    content = load_image(args.content, cfg.size)
    styles = [load_image(s, style_size(cfg)) for s in args.styles]
    coarse = [load_image(s, style_size(cfg)) for s in args.style_coarse or ()]
    content_masks = [load_mask(m, content.shape[:2], "content mask") for m in args.content_masks or ()] or None
    style_masks = None
    if args.style_masks:
        style_masks = [None if m == "none" else load_mask(m, s.shape[:2], "style mask")
                       for m, s in zip(args.style_masks, styles, strict=True)]  # fmt: skip
    init_image = load_image(cfg.init) if cfg.init not in INIT_CHOICES else None
    check_image_sizes(cfg, [content.shape], [s.shape for s in styles + coarse])  # before the bar, not inside stylize
    weights = weights_from_args(args, cfg)
    record = functools.cache(
        lambda: make_record(
            cfg, command="stylize", content=args.content, styles=args.styles, weights=args.weights,
            weights_sha256=weights_digest(weights.params), device=device_name(), output=plan.out,
            style_coarse=args.style_coarse or (), content_masks=args.content_masks or (),
            style_masks=args.style_masks or (),
        )
    )  # fmt: skip
    schedule = scale_schedule(cfg)
    inputs = [_sha256(Path(p)) for p in plan.inputs.values() if p]  # as read now, for the checkpoints
    state, resumed = None, 0
    if plan.meta:
        _check_resume(plan.meta, record(), args.resume)
        if plan.meta.get("inputs_sha256", inputs) != inputs:
            raise JaxnstError(f"checkpoint {args.resume} was made from other images (an input file changed since): "
                              "give that run's images")  # fmt: skip
        k = plan.meta.get("scale", 0)
        shapes = scale_shapes(cfg, content.shape[:2], [s.shape[:2] for s in styles])
        if k not in range(len(shapes)):
            raise JaxnstError(f"checkpoint {args.resume}: scale {k!r} is not one of this run's {len(shapes)} scales")
        template = jax.eval_shape(lambda x: start(x, cfg), jax.ShapeDtypeStruct((1, *shapes[k][0], 3), np.float32))
        state, _ = load_checkpoint(args.resume, template)
        resumed = sum(n for _, n in schedule[:k]) + int(state.step)
    # Steps per dispatch: every print, save and checkpoint falls on a block's end (gcd(n, 0) = n),
    # and at most 10 so the bar keeps moving. The first block is one step (the bar moves as soon as
    # the step is compiled), the others end at multiples of ``every``; the last wherever the run stops.
    every = min(math.gcd(math.gcd(args.print_every, args.save_every), args.checkpoint_every) or 10, 10)
    run = functools.partial(stylize, content, styles, weights, cfg, every=every, init_image=init_image, state=state,
                            coarse_styles=coarse, content_masks=content_masks, style_masks=style_masks)  # fmt: skip
    return _Run(cfg, content, run, record, weights.source, inputs, schedule, resumed)


STEP_TIMES = "step_times.json"  # in $JAXNST_HOME, beside the compilation cache: seconds per step of earlier runs


# Seconds per step of the default settings by pixels, on the quiet 2-core CPU of docs/benchmarks.md (W2 by
# ``scripts/bench_statistics.py``, 4:3 images of 128, 256 and 512 px; 0.126 / 0.275 / 0.890 s measured quiet with
# OpenBLAS on two threads, times the 0.63 / 0.72 / 0.84 that one thread took side by side): a first run's estimate.
REFERENCE_STEP_TIMES = [[128 * 96, 0.080], [256 * 192, 0.197], [512 * 384, 0.748]]


def _rate_key(cfg: Config) -> str:
    """What a step's time depends on beside the image's size: the device, the network and the step's kind."""
    return "|".join(map(str, (device_name(), cfg.model, cfg.style_statistic, cfg.optimizer, cfg.precision, cfg.ops)))


def _read_step_times(home: Path) -> dict:
    try:
        data = json.loads((home / STEP_TIMES).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def estimate_seconds(times: dict, key: str, scales: list[tuple[int, int]]) -> float | None:
    """Seconds of steps (compiles left out) of a run of ``scales`` (pixels, steps) each, from ``times[key]``: the
    seconds per step measured at other sizes, [[pixels, s/step], ...], scaled by pixels from the nearest size."""
    rows = [r for r in times.get(key, []) if isinstance(r, list) and len(r) == 2 and all(
        isinstance(v, (int, float)) and 0 < v < math.inf for v in r)]  # fmt: skip
    if not rows:
        return None
    total = 0.0
    for pixels, steps in scales:
        near_pixels, rate = min(rows, key=lambda r: abs(math.log(r[0] / pixels)))  # noqa: B023
        total += steps * rate * pixels / near_pixels
    return total


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _remember_step_times(home: Path, key: str, measured: dict[int, float]) -> None:
    """Adds this run's seconds per step at each size (pixels -> s/step) to ``home``'s record, the newest kept."""
    from jaxnst._files import atomic_path

    times = _read_step_times(home)
    rows = [r for r in times.get(key, []) if isinstance(r, list) and r and r[0] not in measured]
    times[key] = (rows + [[p, round(s, 5)] for p, s in measured.items()])[-32:]
    with atomic_path(home / STEP_TIMES) as tmp:
        Path(tmp).write_text(json.dumps(times, indent=1) + "\n")


class _Report:
    """The library's ``callback``: the bar, the --web page, the printed losses, snapshots, checkpoints and
    the trace; a stop asked by a signal (``stop``) saves and raises ``Interrupted``. ``finish`` writes the
    image and says how the run went."""

    def __init__(self, args: argparse.Namespace, plan: _Plan, run: _Run, cache):
        from tqdm import tqdm

        self.args, self.plan, self.run, self.stop = args, plan, run, {}
        self.log = (lambda *a: None) if args.quiet else (lambda msg: tqdm.write(msg, file=sys.stderr))
        cfg, schedule = run.cfg, run.schedule
        self.total = sum(n for _, n in schedule)
        if run.resumed:
            self.log(f"jaxnst: resuming {args.resume} at step {run.resumed}")
        upto = "at most " if cfg.tol > 0 else ""
        steps = f"{upto}{cfg.steps} {cfg.optimizer} steps"
        if len(schedule) > 1:
            sides, counts = (", ".join(str(v[i]) for v in schedule) for i in (0, 1))
            steps = f"scales {sides} px, {upto}{counts} {cfg.optimizer} steps ({self.total} in all)"
        self.log(f"jaxnst: {run.w}x{run.h} px, {steps}, {cfg.model} from {run.source}, on {device_name()}")
        if cfg.tol > 0:
            self.log(f"jaxnst: a scale ends sooner once its image changes by less than {cfg.tol:g} per step (--tol)")
        self.home = Path(cache).parent if cache else None  # step times are kept where compiled programs are
        from jaxnst.transfer import scaled_hw

        todo, done = [], run.resumed  # (pixels, steps still to take) at each scale
        for side, n in schedule:
            h, w = scaled_hw((run.h, run.w), side / cfg.size)
            todo.append((h * w, max(0, n - done)))
            done = max(0, done - n)
        left = estimate_seconds(_read_step_times(self.home), _rate_key(cfg), todo) if self.home else None
        import jax

        default = _rate_key(cfg) == _rate_key(Config()) and jax.default_backend() == "cpu"
        guess = estimate_seconds({"": REFERENCE_STEP_TIMES}, "", todo) if default else None
        if left is not None:
            self.log(f"jaxnst: the steps take about {_duration(left)} here (timed by earlier runs on this device), "
                     "plus compiling")  # fmt: skip
        else:
            self.log("jaxnst: no earlier run on this device to time the steps by yet" + (
                f"; on the 2-core CPU of docs/benchmarks.md they take about {_duration(guess)}" if guess else "")
                + "; the bar shows the time left after the first steps")  # fmt: skip
        self.step_times: dict[int, list] = {}  # scale -> [pixels, first t, first step, last t, last step]
        kept = f"kept in {cache} for the next run of this size" if cache else "not kept: JAXNST_COMPILATION_CACHE=0"
        sizes = f"{run.w}x{run.h}" if len(schedule) == 1 else f"each scale, the first at {schedule[0][0]} px"
        self.log(f"jaxnst: compiling the targets and the step for {sizes} ({kept})...")
        self.page = _web_page(args, cfg, run.w, run.h) if args.web is not None else None  # its line before the bar
        self.bar = tqdm(total=self.total, unit="step", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
        self.seen = {"prev": run.resumed}  # steps done before this process
        self.losses: list[dict] = []

    def checkpoint(self, p) -> None:
        from jaxnst.checkpoint import save_checkpoint

        # What the output holds now (the image this run wrote, when it has written one) and what the inputs
        # were: a resume replaces only that output, and only with the same inputs (``_plan``, ``_check_resume``).
        out = self.plan.out
        meta = {**self.run.record(), "scale": p.scale, "inputs_sha256": self.run.inputs_sha256,
                "output_sha256": _sha256(out) if out.is_file() else None}  # fmt: skip
        save_checkpoint(self.plan.ckpt, p.state, meta)

    def write_trace(self, p, reason: str) -> None:
        from jaxnst._files import atomic_path

        if self.plan.trace:
            final = {"loss": p.loss, **p.terms()}
            steps = self.run.offset(p.scale) + p.step
            trace = {**self.run.record(), "losses": self.losses, "final": final, "steps": steps, "stopped": reason}
            with atomic_path(self.plan.trace) as tmp:
                Path(tmp).write_text(json.dumps(trace, indent=1, allow_nan=True) + "\n")

    def written(self, write: Callable[[], None], what: str) -> None:
        try:
            write()
        except OSError as e:  # the run goes on: only this file is missing
            self.log(f"jaxnst: warning: could not write {what} ({e.strerror}); going on")

    def __call__(self, p) -> None:
        from jaxnst.image import save_image

        args, out, seen, bar = self.args, self.plan.out, self.seen, self.bar
        g = self.run.offset(p.scale) + p.step  # steps over all scales
        # Each scale's steady rate: from the end of its first block (which compiled) to its last.
        t = self.step_times.setdefault(p.scale, [p.image.shape[0] * p.image.shape[1], p.elapsed, p.step, None, None])
        t[3:] = p.elapsed, p.step
        if self.page is not None:
            runner, run = self.page
            now = {"status": "done", "message": f"wrote {out}"} if p.done else {
                "message": f"{p.image.shape[1]}x{p.image.shape[0]} px, writing {out}"}  # fmt: skip
            runner.update(run, p.image, p.loss, step=g, steps=self.total, scale=p.scale, scales=p.scales, **now)
        first = "t" not in seen
        if first:  # the first block includes the compile: the bar's rate and ETA start after it
            bar.reset(total=self.total)
            bar.initial = bar.n = bar.last_print_n = g
        bar.update(g - bar.n)
        if p.scales > 1:
            bar.set_description(f"{p.image.shape[1]}x{p.image.shape[0]}", refresh=False)
        # The first step is drawn at once: ``reset`` just drew 0, and tqdm draws again only after ``mininterval``.
        bar.set_postfix(loss=f"{p.loss:.4g}", refresh=first)
        seen.setdefault("t", p.elapsed)
        seen.setdefault("step", g)
        seen.setdefault("first", time.perf_counter() - STARTED)
        seen.setdefault("first_image", p.image)
        self.losses.append({"step": g, "loss": p.loss, **({"scale": p.scale} if p.scales > 1 else {})})
        # Each N-th step over all scales; a block may end past it when scales do not split at multiples of N.
        crossed = lambda n: n and g // n > seen["prev"] // n  # noqa: E731
        at = f" at {p.image.shape[1]}x{p.image.shape[0]}" if p.scales > 1 else ""
        if (crossed(args.print_every) or (args.print_every and p.done)) and not args.quiet:
            t = p.terms()
            self.log(
                f"step {g:5d}/{self.total}{at}  loss {p.loss:.5g}  content {t['content']:.4g}  "
                f"style {t['style']:.4g}  tv {t['tv']:.4g}"
            )
        if crossed(args.save_every) and not p.done:
            k = g // args.save_every * args.save_every
            self.written(lambda: save_image(p.image, self.plan.snapshot(k)), f"the snapshot at step {k}")
        if crossed(args.checkpoint_every) and not p.done:  # the last one after the image is written (``finish``)
            self.written(lambda: self.checkpoint(p), f"the checkpoint at step {g}")
        seen["prev"] = g
        if p.done:
            seen["last"] = p
        elif self.stop.get("signum"):
            bar.close()
            name = signal.Signals(self.stop["signum"]).name
            _save(p.image, out, self.run.record(), args.bit_depth)
            self.checkpoint(p)
            self.write_trace(p, f"stopped by {name}")
            say(f"stopped by {name} at step {g}/{self.total}: wrote {out} and {self.plan.ckpt}; to go on, run the "
                f"same command with --resume {self.plan.ckpt}")  # fmt: skip
            raise Interrupted(self.stop["signum"])

    def finish(self, image, wall: float) -> None:
        """Refuses an image that went NaN at once or never moved; else writes it, the trace, and the summary."""
        import numpy as np

        from jaxnst.engine import STOP_NONFINITE

        cfg, seen, out = self.run.cfg, self.seen, self.plan.out
        p = seen.get("last")
        if p is not None and p.stop == STOP_NONFINITE and p.step == 0 and p.scale == 0:
            raise JaxnstError(
                f"the loss became NaN or infinite at the first step, so nothing was written: {_cause(cfg, p)}"
            )
        steps = self.run.offset(p.scale) + p.step if p else 0
        # Moved by less than one level of an 8-bit image since the first step (the moving average's float
        # noise is not a change); a run that went up a scale has moved.
        first, last = (np.asarray(a) for a in (seen.get("first_image", 0), p.image if p else 0))
        moved = first.shape != last.shape or np.abs(first - last).max() >= 1 / 255
        if p is not None and steps > seen["step"] and not moved:
            raise JaxnstError(f"the image did not change in {steps} steps, so nothing was written: {_cause(cfg, p)}")
        _save(image, out, self.run.record(), self.args.bit_depth)
        if p is not None and self.args.checkpoint_every:
            self.written(lambda: self.checkpoint(p), f"the checkpoint at step {steps}")
        if p is not None:
            self.write_trace(p, p.reason)
        if p is not None and p.stop == STOP_NONFINITE:
            say(f"warning: the loss became NaN or infinite at step {steps + 1}; wrote the image of step {steps}: "
                f"{_cause(cfg, p)}")  # fmt: skip
        # The first block includes the compile; with one block there is no steady rate to report.
        steady = ""
        if p and steps > seen["step"]:
            steady = f" ({(p.elapsed - seen['t']) / (steps - seen['step']):.3f} s/step after compile)"
        reason = p.reason if p else "no steps"
        if "first" in seen:  # what a user waits before anything moves: start-up, targets, compile, one step
            first = "first step" if seen["step"] == 1 else f"first {seen['step']} steps"
            steady += f"; {first} done {seen['first']:.1f} s after start"
        measured = {px: (t1 - t0) / (n1 - n0) for px, t0, n0, t1, n1 in self.step_times.values() if n1 > n0}
        if self.home is not None and measured:
            with contextlib.suppress(OSError):  # a record for next time: never a reason to fail this run
                _remember_step_times(self.home, _rate_key(cfg), measured)
        where = f"on {device_name()}; stopped: {reason}"
        self.log(f"jaxnst: wrote {out} ({self.run.w}x{self.run.h}) after {steps} steps in {wall:.1f} s{steady} {where}")
