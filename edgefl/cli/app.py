"""The `edgefl` Typer root. Commands live one per module and are mounted from the tables below.

A command whose module fails to import (an optional dependency missing) becomes a stub that says what
is missing, so one broken extra never breaks the whole CLI.
"""

import importlib
import sys

import typer

from edgefl.errors import EdgeflError

# command name → (module, attribute): attribute is a function (a command) or a typer.Typer (a group)
COMMANDS = {
    "train": ("edgefl.cli.train", "command"),
    "profiles": ("edgefl.cli.profiles", "app"),
    "export": ("edgefl.cli.export", "command"),
    "bench": ("edgefl.cli.bench", "command"),
    "detect": ("edgefl.cli.detect", "command"),
    "pack": ("edgefl.cli.pack", "command"),
    "aggregate": ("edgefl.cli.aggregate", "command"),
    "agent": ("edgefl.cli.agent", "command"),
    "broker": ("edgefl.cli.broker", "command"),
    "federation": ("edgefl.cli.federation", "app"),
    "simulate": ("edgefl.cli.simulate", "command"),
    "report": ("edgefl.cli.report", "command"),
    "data": ("edgefl.cli.data", "app"),
    "demo": ("edgefl.cli.demo", "command"),
}


def compress_commands() -> dict:
    """`edgefl compress NAME` for every registry method with a command: {name: label}."""
    from edgefl.methods.registry import METHODS

    return {name: m.label for name, m in METHODS.items() if m.command}


def _spoken(items: list) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])}, or {items[-1]}"


def _stub(name: str, reason: str):
    def stub():
        raise EdgeflError(f"`edgefl {name}` is unavailable here ({reason}) — install edgefl[host] and retry")

    stub.__doc__ = f"(unavailable: {reason})"
    return stub


def _load(module: str, attr: str, name: str):
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise  # one of edgefl's own modules: a packaging bug, not an extra to install
        return _stub(name, f"missing dependency {e.name}")
    except AttributeError:
        return _stub(name, f"{module} has no {attr}")


def _mount(app: typer.Typer, table: dict, prefix: str = "") -> None:
    for name, (module, attr) in table.items():
        target = _load(module, attr, f"{prefix}{name}")
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name, help=target.__doc__)(target)


def _version(value: bool):
    if value:
        from edgefl import __version__

        typer.echo(f"edgefl {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        help="edgefl: train, compress, export and federate models for Jetson-class edge devices.",
        no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                          help="Print the version and exit.")):
        """edgefl: train, compress, export and federate models for Jetson-class edge devices."""

    _mount(app, COMMANDS)
    methods = compress_commands()
    help_text = f"Compress a checkpoint: {_spoken(list(methods.values()))}."
    compress = typer.Typer(help=help_text, no_args_is_help=True)
    _mount(compress, {name: (f"edgefl.cli.compress_{name}", "command") for name in methods}, "compress ")
    app.add_typer(compress, name="compress")
    return app


def main(argv=None) -> int:
    """Entry point: a usage error, EdgeflError or EdgeRuntimeError is one line on stderr, exit 2."""
    from edgefl.cli import errors
    from edgefl.cli.aliases import rewrite
    from edgefl.cli.common import err_console
    from edgefl.runtime.errors import EdgeRuntimeError

    argv, notes = rewrite(list(sys.argv[1:] if argv is None else argv))
    for note in notes:
        err_console.print(note, style="yellow")
    app = build_app()
    try:
        app(args=argv, prog_name="edgefl", standalone_mode=False)
    except (EdgeflError, EdgeRuntimeError, typer.TyperException) as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            return 2  # a group without its command: typer has printed the group's help
        return errors.report(e, errors.wants_json(argv))
    except typer.Abort:
        err_console.print("aborted", style="red")
        return 130
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except typer.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
