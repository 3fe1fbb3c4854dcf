"""``jaxnst weights fetch|convert|info|list``: getting VGG weights and looking at them.

Messages, the progress bar and files live here; formats are ``jaxnst.weights``'
job and the download ``jaxnst.fetch``'s. ``default_weights`` is the main
command's fallback when no ``--weights`` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from jaxnst._files import atomic_path
from jaxnst.errors import JaxnstError
from jaxnst.fetch import DownloadError, download, file_digests, hash_matches
from jaxnst.vgg import BLOCKS, Preprocessing
from jaxnst.weights import (
    TORCH_EXTRA,
    _arch_from,
    cache_dir,
    cache_name,
    convert,
    detect_layout,
    file_format,
    find_weights,
    load_manifest,
    load_weights,
    manifest_entry,
    save_weights,
)

WEIGHT_SUFFIXES = (".h5", ".hdf5", ".pth", ".pt", ".mat")


def _say(msg: str) -> None:
    print(f"jaxnst: {msg}", file=sys.stderr)


def _mb(n: int | None) -> str:
    return "unknown size" if n is None else f"{n / 1e6:.0f} MB"


def describe_preprocessing(pre: Preprocessing) -> str:
    """``'caffe: BGR x255 - mean (103.939, 116.779, 123.68)'`` and so on, from the record in the file."""
    text = f"{pre.name}: {pre.channel_order} x{pre.scale:g} - mean ({', '.join(f'{m:g}' for m in pre.mean)})"
    if tuple(pre.std) != (1.0, 1.0, 1.0):
        text += f" / std ({', '.join(f'{s:g}' for s in pre.std)})"
    return text


def sidecar(path: Path) -> Path:
    """``vgg19.h5.sha256``: the converted file's SHA-256 in ``sha256sum`` format."""
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: Path) -> str | None:
    try:
        return sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        return None


def _write_sidecar(path: Path, sha256: str) -> None:
    with atomic_path(sidecar(path)) as tmp:
        Path(tmp).write_text(f"{sha256}  {path.name}\n")


class _Progress:
    """``download``'s progress callback: on the first byte, says ``note`` and opens a tqdm bar.

    Lazily, so that a download that cannot even connect prints only its error.
    """

    def __init__(self, note: str | None, name: str, total: int | None, quiet: bool):
        self.note, self.name, self.total, self.quiet, self.bar = note, name, total, quiet, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            if self.note:
                _say(self.note)
            self.bar = tqdm(
                desc=self.name,
                total=total or self.total,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=self.quiet,
                leave=False,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch(
    arch: str = "vgg19",
    source: str | None = None,
    *,
    url: str | None = None,
    force: bool = False,
    quiet: bool = False,
    note: str | None = None,
) -> Path:
    """Downloads the manifest's ``arch`` file from ``source``, checks it, converts it into the cache.

    Steps: stream into ``$JAXNST_HOME/downloads/NAME.part`` (resumed if it is
    there), verify the published hash, rename, convert to ``$JAXNST_HOME/
    {arch}.h5`` (atomically), record that file's SHA-256 beside it in
    ``{arch}.h5.sha256``, delete the download. Returns the converted file.
    ``note`` replaces the "downloading ..." line, said once bytes flow (even
    when ``quiet``: a download is a side effect the user should hear of).
    """
    entry = manifest_entry(arch, source)
    home = cache_dir()
    dest = home / cache_name(entry)
    if dest.is_file() and not force:
        recorded = recorded_sha256(dest)
        if recorded is None or file_digests(dest)["sha256"] == recorded:
            if not quiet:
                _say(f"{dest} is already there ({arch}, {entry['source']}); --force fetches it again")
            return dest
        _say(f"{dest} differs from its recorded SHA-256: fetching it again")
    if entry["format"] == "torchvision":  # fail before a 550 MB download, not after
        try:
            import torch  # noqa: F401
        except ImportError:
            raise JaxnstError(f"--source torchvision needs torch to read the .pth: {TORCH_EXTRA}") from None
    raw = home / "downloads" / entry["filename"]
    src_url = url or entry["url"]
    if note is None and not quiet:
        note = f"downloading {arch} weights ({entry['source']}, {_mb(entry.get('size'))}) from {src_url}"
    progress = _Progress(note, entry["filename"], entry.get("size"), quiet)
    try:
        digests = download(src_url, raw, entry["hash"], size=entry.get("size"), progress=progress)
    except KeyboardInterrupt:
        progress.close()  # so that the note is not drawn over the bar
        _say(f"download interrupted; {raw.name}.part is kept and the same command resumes it")
        raise
    finally:
        progress.close()
    weights = load_weights(raw, arch)
    if weights.preprocessing.name != entry["preprocessing"]:
        raise JaxnstError(
            f"{raw}: read with {weights.preprocessing.name} preprocessing, the manifest says "
            f"{entry['preprocessing']}: the manifest entry is wrong"
        )
    origin = {
        "origin_url": src_url,
        "origin_file": entry["filename"],
        "origin_hash": entry["hash"],
        "origin_md5": digests["md5"],
        "origin_sha256": digests["sha256"],
    }
    save_weights(weights, dest, origin=origin)
    sha256 = file_digests(dest)["sha256"]
    _write_sidecar(dest, sha256)
    raw.unlink()
    if not quiet:
        _say(f"wrote {dest} ({arch}, {describe_preprocessing(weights.preprocessing)}; sha256 {sha256})")
    return dest


def default_weights(arch: str = "vgg19", *, download: bool = True, quiet: bool = False) -> Path:
    """The cached weights for ``arch``; if there are none, fetches the manifest's default file once.

    With ``download=False`` (``--no-download``) a missing file is an error that
    names the URL and ``--weights PATH``, and nothing touches the network.
    """
    try:
        return find_weights(arch)
    except JaxnstError:
        if not download:
            raise
    entry = manifest_entry(arch)
    home = cache_dir()
    note = (
        f"no {arch} weights in {home}: fetching the default once, {entry['source']} {arch} "
        f"({_mb(entry.get('size'))}) from {entry['url']}"
    )
    try:
        return fetch(arch, quiet=quiet, note=note)
    except DownloadError as e:
        raise JaxnstError(
            f"no {arch} weights in {home} and cannot download {e.url} ({e.reason}): fetch that file on a "
            f"machine with internet and copy it into {home}, or pass --weights PATH (see weights/README.md)"
        ) from None


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
        arch = _arch_from(dict.fromkeys(names), path)
    except JaxnstError:
        arch = "?"
    return layout, arch, layout


def info(path: str | Path) -> str:
    """What ``jaxnst weights info FILE`` prints: architecture, layers, preprocessing, source, SHA-256."""
    path = Path(path)
    weights = load_weights(path)
    digests = file_digests(path)
    kind = file_format(path)
    lines = [f"file:          {path}"]
    if kind == "h5":
        import h5py

        with h5py.File(path, "r") as f:
            layout = detect_layout(f)
            extra = {k: str(v) for k, v in f.attrs.items() if k.startswith("origin_")}
        lines.append(f"format:        {layout} h5" + (" (canonical)" if layout == "jaxnst" else " (converted on load)"))
    else:
        extra = {}
        lines.append(
            f"format:        {'torchvision .pth' if kind == 'torch' else 'MatConvNet .mat'} (converted on load)"
        )
    lines += [
        f"architecture:  {weights.arch}",
        f"source:        {weights.source}",
        f"preprocessing: {describe_preprocessing(weights.preprocessing)}",
    ]
    lines += [f"{k + ':':<15}{v}" for k, v in extra.items()]
    recorded = recorded_sha256(path)
    check = "" if recorded is None else ("  (matches " if recorded == digests["sha256"] else "  (DIFFERS from ")
    check += f"{sidecar(path).name})" if recorded else ""
    lines.append(f"sha256:        {digests['sha256']}{check}")
    for entry in load_manifest()["files"]:
        if hash_matches(digests, entry["hash"]):
            lines.append(f"published as:  {entry['url']} ({entry['hash']} matches)")
    lines.append(f"layers:        {len(weights.params)} convolutions, kernels HWIO")
    for name, leaves in weights.params.items():
        lines.append(f"  {name:<8} kernel {tuple(leaves['kernel'].shape)}  bias {tuple(leaves['bias'].shape)}")
    return "\n".join(lines)


def listing() -> str:
    """What ``jaxnst weights list`` prints: the weight files and partial downloads in the cache."""
    home = cache_dir()
    files = sorted(p for p in home.glob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()) if home.is_dir() else []
    parts = sorted((home / "downloads").glob("*.part")) if home.is_dir() else []
    if not files and not parts:
        return (
            f"{home}: no weights yet; run 'jaxnst weights fetch' (or see weights/README.md to bring a file in by hand)"
        )
    defaults = {}
    for arch in BLOCKS:
        try:
            defaults[find_weights(arch)] = arch
        except JaxnstError:
            pass
    lines = [f"{home}:"]
    for p in files:
        try:
            if file_format(p) == "h5":
                layout, arch, source = _h5_summary(p)
            else:
                layout, arch, source = file_format(p), "?", "?"
        except (JaxnstError, OSError) as e:
            lines.append(f"  {p.name:<52} unreadable: {e}")
            continue
        recorded = recorded_sha256(p)
        status = ""
        if recorded is not None:
            status = "sha256 ok" if file_digests(p)["sha256"] == recorded else "sha256 DIFFERS from its record"
        default = f"default for {defaults[p]}" if p in defaults else ""
        fields = [f"{arch:<6}", f"{layout:<10}", f"{source:<12}", _mb(p.stat().st_size), status, default]
        lines.append(f"  {p.name:<52} " + "  ".join(x for x in fields if x))
    for p in parts:
        lines.append(f"  downloads/{p.name:<42} partial, {_mb(p.stat().st_size)}: 'jaxnst weights fetch' resumes it")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli import _Parser

    p = _Parser(prog="jaxnst weights", description="Fetch, convert and inspect VGG weight files.")
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
        choices=("keras", "torchvision"),
        default=None,
        help="keras: Caffe weights, BGR preprocessing (default); torchvision: RGB mean/std",
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
    i = sub.add_parser("info", help="architecture, layers, preprocessing, source and SHA-256 of a weight file")
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
        weights = convert(args.src, dst, args.arch)
        sha256 = file_digests(dst)["sha256"]
        if dst.resolve().parent == cache_dir().resolve():  # into the cache: recorded like a fetched file
            _write_sidecar(dst, sha256)
        _say(f"wrote {dst} ({weights.arch}, {describe_preprocessing(weights.preprocessing)}; sha256 {sha256})")
    elif args.command == "info":
        print(info(args.file))
    else:
        print(listing())
    return 0


__all__ = ["default_weights", "fetch", "info", "listing", "main"]
