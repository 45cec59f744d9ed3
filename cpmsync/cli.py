"""The `cpmsync` command: one Typer app, one sub-app per component.

Component CLIs live next to their code (`cpmsync/<component>/cli.py`); this module only wires
them together and owns the options every subcommand shares (logging).
"""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from cpmsync import __version__
from cpmsync.app.cli import app as app_app
from cpmsync.daemon.cli import app as daemon_app
from cpmsync.daemon.cli import watch
from cpmsync.demo.cli import demo
from cpmsync.errors import UserInputError
from cpmsync.logs import LogFormat, setup_logging
from cpmsync.msgstore.cli import app as msgstore_app
from cpmsync.simulator.cli import app as simulator_app


class LogLevel(StrEnum):
    """The levels a user may ask for; an unknown one is a usage error, not a traceback."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


app = typer.Typer(
    name="cpmsync",
    help="CPM Message Store sync with LIST-CHANGEDSINCE: reference server, sync daemon, energy simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(msgstore_app, name="msgstore")
app.add_typer(daemon_app, name="daemon")
app.add_typer(simulator_app, name="simulate")
app.add_typer(app_app, name="app")
app.command("watch")(watch)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        from cpmsync import native

        # Which build runs matters for speed reports: a device without a C compiler runs the codec as Python.
        typer.echo(f"cpmsync {__version__} ({native.summary()})")
        raise typer.Exit()


@app.callback()
def _root(
    log_format: LogFormat = typer.Option("text", "--log-format", help="text (key=value) or json."),
    log_level: LogLevel = typer.Option(LogLevel.INFO, "--log-level", case_sensitive=False),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    setup_logging(log_format, log_level.value)


def main() -> None:
    """Console-script entry: configuration errors print one line, never a traceback."""
    try:
        app()
    except UserInputError as e:
        # rich only here: `cpmsync daemon run` and the other commands' start-up never pay its import.
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]{e.label}:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
