"""`cpmsync demo` (filled by the demo issue)."""

import typer


def demo() -> None:
    """Run msgstore, broker, daemon and a change generator together, and show what they do."""
    raise typer.Exit(1)
