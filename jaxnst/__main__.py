"""``python -m jaxnst`` and the ``jaxnst`` command (``entry``). Ctrl-C is taken from here on, before
JAX's import (which a ``KeyboardInterrupt`` can break in ways that end in a traceback or an abort)."""

import os
import signal
import sys

from jaxnst._files import leave_at_once

signal.signal(signal.SIGINT, leave_at_once)

# W2's eigendecompositions run in LAPACK on CPUs, and its OpenBLAS (SciPy's, loaded at JAX's first eigh) starts a
# thread per core that spins against XLA's own threads for the same cores: on 2 cores a W2 step at 128 px took
# 0.23 s with them and 0.14 s with one (docs/benchmarks.md). The library leaves a process's threads alone; the
# command, which owns its process, asks for one unless the user has chosen.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _stand_in_for_closed_streams() -> None:
    """Started with stderr (or stdout) closed (``2>&-``): its number would go to the next file opened, an output
    that XLA's log lines would then land in, and the progress bar failed (exit 1, no message). Errors go to stdout
    then, or to /dev/null."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(1 if fd == 2 and sys.stdout is not None else os.open(os.devnull, os.O_WRONLY), fd)
            setattr(sys, name, open(fd, "w", closefd=False))


_stand_in_for_closed_streams()

from jaxnst.cli import main  # noqa: E402


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
