"""Atomic file writes: readers never see a half-written output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

_PENDING: set[str] = set()  # temporary files being written, for remove_pending


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
