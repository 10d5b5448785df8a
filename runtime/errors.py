"""Errors raised by the edge runtime.

The host CLI maps :class:`EdgeRuntimeError` to one red line (``edgefl.errors`` cannot be
imported here: imports go edgefl -> edgefl.runtime, never back).
"""


class EdgeRuntimeError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class WireError(EdgeRuntimeError):
    """A message could not be decoded; ``reason`` is a short machine-friendly cause."""

    def __init__(self, reason, detail=""):
        self.reason = reason
        self.detail = detail
        super(WireError, self).__init__("{}{}".format(reason, ": " + detail if detail else ""))


class CodecError(WireError):
    """An encoded update is inconsistent with its codec (bad lengths, indices, params)."""


def fault_location(exc):
    """``file.py:line`` of the last frame of ``exc``'s traceback: where an isolated exception
    (one message's, one round's) was raised, for the log line that replaces the traceback."""
    import traceback

    where = traceback.extract_tb(exc.__traceback__)[-1]
    return "{}:{}".format(where[0].rsplit("/", 1)[-1], where[1])
