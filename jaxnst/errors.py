"""The one exception type meant for users."""


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
        """The message with ``field`` written as the command-line flag."""
        msg = str(self)
        return msg.replace(self.field, "--" + self.field.replace("_", "-"), 1) if self.field else msg
