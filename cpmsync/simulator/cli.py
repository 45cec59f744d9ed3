"""`cpmsync simulate ...` (filled by the simulator issue)."""

import typer

app = typer.Typer(help="UNI bytes and radio energy per sync strategy.", no_args_is_help=True)


@app.command()
def run() -> None:
    """Run a scenario."""
    raise typer.Exit(1)
