"""Files: atomic writes (readers never see a half-written output), whether a path is a file to read, and leaving
at once on a signal without leftovers."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from jaxnst.errors import JaxnstError

_PENDING: set[str] = set()  # temporary files being written, for leave_at_once


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path beside ``path``; renames it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    _PENDING.add(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _PENDING.discard(tmp)


def leave_at_once(signum, frame) -> None:
    """A signal handler for the CLI outside a run's own (``cli.stylize.stop_requests``: imports, weights,
    compiling, ``--size auto``'s timing), where nothing is finished: removes the temporary files of
    writes under way and leaves. (A ``KeyboardInterrupt`` raised there became an ImportError traceback
    inside numpy's import, a C++ abort inside jaxlib, or was swallowed by JAX's gc callback.)"""
    for tmp in list(_PENDING):
        Path(tmp).unlink(missing_ok=True)
    os.write(2, b"jaxnst: interrupted\n")
    os._exit(128 + signum)


def check_file(path: str | os.PathLike, what: str, fix: str) -> None:
    """A ``JaxnstError`` naming why ``path`` is not a regular file to read (missing, a dangling link, a folder,
    a FIFO, a device, a link loop, no permission), as "``what`` ``path`` ...: ``fix``"; nothing if it is one.
    ``os.stat``, not ``open``: opening a FIFO would wait for a writer."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise  # the CLI's one line for every over-long name, shortened
        if e.errno == errno.ENOENT and os.path.islink(path):
            link = os.readlink(path)
            raise JaxnstError(f"{what} {path} is a link to {link}, which does not exist: fix the link") from None
        if e.errno == errno.ENOENT:
            raise JaxnstError(f"{what} {path} does not exist: {fix}") from None
        raise JaxnstError(cannot_read(path, what, e)) from None
    if stat.S_ISDIR(mode):
        raise JaxnstError(f"{what} {path} is a folder, not a file: {fix}")
    if stat.S_ISFIFO(mode):
        raise JaxnstError(f"{what} {path} is a named pipe (FIFO), not a file: {fix}")
    if not stat.S_ISREG(mode):
        raise JaxnstError(f"{what} {path} is not a regular file: {fix}")


def cannot_read(path: str | os.PathLike, what: str, e: OSError) -> str:
    fix = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
           errno.ELOOP: "a symbolic link on its path leads back to itself: fix the link"}  # fmt: skip
    return f"{what} {path} cannot be read ({e.strerror}): {fix.get(e.errno, 'check the path')}"
