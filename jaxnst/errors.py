"""The one exception type meant for users."""


class JaxnstError(Exception):
    """A problem with the user's input, in one line that names the fix.

    The CLI prints it without a traceback and exits with status 2; any other
    exception is a bug in jaxnst.
    """
