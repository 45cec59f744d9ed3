"""`cpmsync daemon ...` and `cpmsync watch` (filled by the daemon issue)."""

import typer

app = typer.Typer(help="The device-side sync daemon.", no_args_is_help=True)


@app.command()
def run() -> None:
    """Run the daemon."""
    raise typer.Exit(1)


def watch() -> None:
    """Subscribe to the daemon's MQTT topics and print events as they arrive."""
    raise typer.Exit(1)
