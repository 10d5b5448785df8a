"""Option types every command shares: each parses and checks its value as the command line is read.

A factory returns a ``typer.Option`` (or ``typer.Argument``) whose parser is one of the pure checks in
`edgefl.cli.validate`, and whose help states the accepted range or the registry's names — so a bad value
stops the command with one line before any work, and help cannot drift from what is accepted.
"""

from __future__ import annotations

import typer

from edgefl.cli import validate


def parser_of(check, *args, **kwargs):
    def parse(value):
        if not isinstance(value, str):  # a default, already a value
            return value
        try:
            return check(value, *args, **kwargs)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


def _with(help_text: str, extra: str) -> str:
    # parentheses, not brackets: typer renders help as rich markup, where "[one of ...]" is a style tag
    return f"{help_text} ({extra})" if help_text else f"({extra})"


def integer(default, *names, low=None, high=None, help: str = "", **kw):
    """A whole number within [low, high]."""
    bounds = validate._range_text(low, high)
    return typer.Option(default, *names, parser=parser_of(validate.integer, low, high), metavar="INT",
                        help=_with(help, bounds) if bounds else help, **kw)


def number(default, *names, low=None, high=None, low_open=False, help: str = "", **kw):
    """A finite number above ``low`` (strictly with low_open) and at most ``high``."""
    bounds = validate._range_text(low, high, low_open)
    return typer.Option(default, *names, parser=parser_of(validate.number, low, high, low_open),
                        metavar="NUM",
                        help=_with(help, bounds) if bounds else help, **kw)


def choice(default, names, what: str, *opts, help: str = "", **kw):
    """One of a registry's names; help lists them (from the registry, not from a copy)."""
    names = sorted(names)
    return typer.Option(default, *opts, parser=parser_of(validate.choice, names, what), metavar="NAME",
                        help=_with(help, "one of " + ", ".join(names)), **kw)


def name(default, what: str, *opts, help: str = "", **kw):
    """A federation name or client id (one MQTT topic level)."""
    return typer.Option(default, *opts, parser=parser_of(validate.name, what), metavar="NAME",
                        help=_with(help, "letters, digits, . _ -"), **kw)


def port(default, *opts, help: str = "TCP port.", **kw):
    return typer.Option(default, *opts, parser=parser_of(validate.port), metavar="PORT",
                        help=_with(help, "1..65535"), **kw)


def host(default, *opts, help: str = "Host name or IP address.", **kw):
    return typer.Option(default, *opts, parser=parser_of(validate.host), metavar="HOST", help=help, **kw)


def broker(default, *opts, help: str = "MQTT broker URL.", **kw):
    return typer.Option(default, "--broker", *opts, parser=parser_of(validate.broker_url), metavar="URL",
                        help=_with(help, "mqtt://HOST:PORT or mqtts://HOST:PORT"), **kw)


def key_values(*opts, help: str = "", **kw):
    """Repeatable key=value."""
    return typer.Option(None, *opts, parser=parser_of(validate.key_value), metavar="KEY=VALUE",
                        help=help, **kw)


def partition(*opts, help: str = "", **kw):
    return typer.Option(None, *opts, parser=parser_of(validate.partition), metavar="INDEX/COUNT", help=help,
                        **kw)


def existing(default, kind: str = "any", *opts, help: str = "", **kw):
    """An input path that must exist (a file, a directory, or either)."""
    return typer.Option(default, *opts, parser=parser_of(validate.existing, kind), metavar="PATH", help=help,
                        **kw)


def existing_argument(kind: str = "any", help: str = "", metavar: str = "PATH"):
    return typer.Argument(..., parser=parser_of(validate.existing, kind), metavar=metavar, help=help)


def out(default, help: str, **kw):
    """--out: the one path the command creates (see edgefl.cli.staging for the rule)."""
    return typer.Option(default, "--out", "-o", parser=parser_of(validate.writable_target), metavar="PATH",
                        help=f"{help} New, or an empty directory; --force replaces it.", **kw)


def target_size():
    """--target-size of the compression methods: a byte count or a ratio, parsed by the method's settings."""
    return typer.Option(
        None, "--target-size", metavar="SIZE",
        help="Reach at most this size: bytes (150000, 150kB, 146KiB) or a ratio to the float model (12x).",
    )


def force():
    return typer.Option(False, "--force", "-f", help="Replace what is at --out.")


def as_json(what: str = "the result"):
    return typer.Option(False, "--json", help=f"Print {what} as one JSON document on stdout.")


def quiet():
    return typer.Option(False, "--quiet", "-q", help="No progress or log lines on stderr.")


def seed():
    return typer.Option(0, "--seed", parser=parser_of(validate.integer, 0), metavar="INT",
                        help="Random seed (≥ 0).")


def federation():
    return name("edgefl", "federation name", "--federation", help="Federation name (topics edgefl/NAME/...).")


def profile(default="jetson-tx2", *opts):
    """A device profile: a shipped name or a .toml path."""
    from edgefl.export.profiles import profile_names

    return typer.Option(default, "--profile", *opts, parser=parser_of(check_profile), metavar="NAME",
                        help=f"Device profile: one of {', '.join(profile_names())}, or a .toml file.")


def check_profile(text: str) -> str:
    """A shipped profile name or a .toml file that reads as a valid profile."""
    from edgefl.errors import EdgeflError
    from edgefl.export.profiles import load_profile

    try:
        load_profile(text)
    except EdgeflError as exc:
        raise ValueError(str(exc)) from None
    return text



def model(default="resnet20", help: str = "Model to build"):
    from edgefl.models.registry import model_names

    return typer.Option(default, "--model", parser=parser_of(validate.model_ref), metavar="MODEL",
                        help=f"{help}: a zoo name ({', '.join(model_names())}), package.module:factory or "
                        "path/to/file.py:factory.")


def data(default="mnist", help: str = "Dataset"):
    from edgefl.data.registry import DATASETS

    return typer.Option(default, "--data", parser=parser_of(validate.dataset), metavar="DATA",
                        help=f"{help}: {', '.join(sorted(DATASETS))}, an .npz file (x, y), an image folder "
                        "or a folder of idx files.")


def legacy_host():
    """--host of aggregate/agent before --broker (hidden; one release)."""
    return typer.Option(None, "--host", parser=parser_of(validate.host), hidden=True)


def legacy_port():
    return typer.Option(None, "--port", parser=parser_of(validate.port), hidden=True)


def broker_with_legacy(broker: str, host, port) -> str:
    """--broker, with the old --host/--port (if given) in place of its host and port."""
    from urllib.parse import urlsplit

    if host is None and port is None:
        return broker
    parts = urlsplit(broker)
    netloc = parts.netloc.rpartition("@")[0]
    netloc = (netloc + "@" if netloc else "") + f"{host or parts.hostname}:{port or parts.port or 1883}"
    return f"{parts.scheme}://{netloc}"
