"""The one exception type meant for users."""

import re


class JaxnstError(Exception):
    """A problem with the user's input, in one line that names the fix.

    The CLI prints it without a traceback and exits with status 2; any other
    exception is a bug in jaxnst. ``field`` is the ``Config`` field the message
    names (as written in it), if any: the CLI writes it as its flag
    (``style_weight`` -> ``--style-weight``).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def for_cli(self) -> str:
        """The message with ``field`` written as the command-line flag (the first time it stands
        as a word of its own, not inside a path)."""
        if not self.field:
            return str(self)
        from jaxnst.config import flag as flag_of

        flag = flag_of(self.field)
        return re.sub(rf"(?<![\w/.-]){re.escape(self.field)}(?![\w/.-])", flag, str(self), count=1)
