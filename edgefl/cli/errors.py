"""How a failed command reports: one line on stderr (text printed literally), and with --json also
``{"error": ..., "code": ...}`` on stdout; exit code 2.

Codes: ``usage`` (the command line: unknown or missing option, a value out of range), ``input`` (an
EdgeflError: a file or its content), ``runtime`` (the edge runtime refused something).
"""

from __future__ import annotations

import json
import sys

import typer

from edgefl.errors import EdgeflError


def usage_line(exc: typer.TyperException) -> str:
    """One line for a usage error: what is wrong, and the fix (the value's own, or the command's --help)."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "edgefl"
    param = getattr(exc, "param", None)
    text = " ".join(exc.format_message().split()).rstrip(".")
    if isinstance(exc, typer.BadParameter) and param is not None and " — " in text:
        # our own checks name the fix: "edgefl train --epochs: 'x' is not a whole number — pass e.g. 1"
        text = text.split(": ", 1)[1] if text.startswith("Invalid value for") else text
        return f"{where} {'/'.join(param.opts)}: {text}"
    return f"{where}: {text} — see `{where} --help`"


def describe(exc: BaseException) -> tuple:
    """(message, code) of an error a command reports as one line."""
    from edgefl.runtime.errors import EdgeRuntimeError

    if isinstance(exc, typer.TyperException):
        return usage_line(exc), "usage"
    if isinstance(exc, EdgeflError):
        return " ".join(str(exc).split()), getattr(exc, "code", "input")
    if isinstance(exc, EdgeRuntimeError):
        return " ".join(str(exc).split()), "runtime"
    raise TypeError(f"not a reportable error: {type(exc).__name__}")


def report(exc: BaseException, as_json: bool) -> int:
    """Print the error (stderr; also stdout JSON with --json) and return the exit code, 2."""
    from edgefl.cli.common import err_console

    message, code = describe(exc)
    err_console.print(f"error: {message}", style="bold red")
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "code": code}) + "\n")
    return 2


def wants_json(argv) -> bool:
    """--json among the options (before a `--`)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False
