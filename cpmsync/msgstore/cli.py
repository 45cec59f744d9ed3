"""`cpmsync msgstore ...` (filled by the msgstore issue)."""

import typer

app = typer.Typer(
    help="The reference CPM Message Store (IMAP server with LIST-CHANGEDSINCE).", no_args_is_help=True
)


@app.command()
def serve() -> None:
    """Run the server."""
    raise typer.Exit(1)
