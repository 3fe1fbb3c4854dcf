"""``python -m jaxnst`` and the ``jaxnst`` command (``entry``). Ctrl-C is taken from here on, before
JAX's import (which a ``KeyboardInterrupt`` can break in ways that end in a traceback or an abort)."""

import signal
import sys

from jaxnst._files import leave_at_once

signal.signal(signal.SIGINT, leave_at_once)

from jaxnst.cli import main  # noqa: E402


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
