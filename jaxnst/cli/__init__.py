"""The ``jaxnst`` command line: ``jaxnst CONTENT STYLE -o OUT`` and its subcommands.

One module per command (``stylize``, ``batch``, ``weights``, ``estimate``, ``reproduce``) over
``common`` (parser, flags, messages); ``main`` dispatches and turns a ``JaxnstError`` into one
line and exit code 2.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

from jaxnst._files import leave_at_once
from jaxnst.cli.common import SUBCOMMANDS
from jaxnst.cli.stylize import Interrupted, build_parser, run_stylize
from jaxnst.errors import JaxnstError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, leave_at_once) if main_thread else None
    try:
        return _dispatch(argv)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _dispatch(argv: list[str]) -> int:
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]) or 0
        _check_not_a_mistyped_command(argv)
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
    except OSError as e:  # a path over NAME_MAX or PATH_MAX, met wherever it was first looked at
        if e.errno != errno.ENAMETOOLONG:
            raise
        name = os.fsdecode(e.filename) if e.filename is not None else "a path"
        shown = name if len(name) <= 80 else f"{name[:60]}... ({len(name)} characters)"
        print(f"jaxnst: error: {shown} is too long: give a shorter path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxnst: interrupted", file=sys.stderr)
        return 130
    return 0


def _check_not_a_mistyped_command(argv: list[str]) -> None:
    """``jaxnst serv``: a first word that is no file, has no suffix and is close to a command's name is
    that command mistyped, not a content image."""
    import difflib
    from pathlib import Path

    word = argv[0] if argv else ""
    if word and not word.startswith("-") and "." not in word and "/" not in word and not Path(word).exists():
        close = difflib.get_close_matches(word, SUBCOMMANDS, n=1, cutoff=0.6)
        if close:
            raise JaxnstError(f"no command {word!r} and no such image: did you mean `jaxnst {close[0]}`?")


if __name__ == "__main__":
    sys.exit(main())
