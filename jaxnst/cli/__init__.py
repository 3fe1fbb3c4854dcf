"""The ``jaxnst`` command line: ``jaxnst CONTENT STYLE -o OUT`` and its subcommands.

One module per command (``stylize``, ``batch``, ``weights``, ``estimate``, ``reproduce``) over
``common`` (parser, flags, messages); ``main`` dispatches and turns a ``JaxnstError`` into one
line and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys

from jaxnst.cli.common import SUBCOMMANDS
from jaxnst.cli.stylize import Interrupted, build_parser, run_stylize
from jaxnst.errors import JaxnstError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
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
