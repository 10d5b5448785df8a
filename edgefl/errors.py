"""The one error type the CLI reports as a single line (problem — fix), never as a traceback."""


class EdgeflError(Exception):
    """A user-facing error: the message names the problem and how to fix it."""
