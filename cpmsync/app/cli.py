"""`cpmsync app web`: the reference inbox page for one account (cpmsync/app/web.py)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app"]

app = typer.Typer(name="app", help="Reference apps on the daemon's MQTT topics.", no_args_is_help=True)


@app.command("web")
def web(
    config: Path = typer.Option(..., "--config", help="The daemon's config file (account, broker, cache)."),
    listen: str = typer.Option("127.0.0.1:8025", "--listen", help="HOST:PORT to serve the page on."),
) -> None:
    """Serve an inbox page: conversations, unread counts, live updates; opening one marks it read."""
    import asyncio

    from cpmsync.app.web import InboxBridge, serve_inbox
    from cpmsync.daemon.settings import load_daemon_settings
    from cpmsync.demo.cli import _hostport

    settings = load_daemon_settings(config)
    host, port = _hostport(listen, "--listen")

    def ready(bridge: InboxBridge) -> None:
        typer.echo(f"inbox page: {bridge.url}  (Ctrl-C stops)")

    try:
        asyncio.run(serve_inbox(settings, host, port, on_ready=ready))
    except KeyboardInterrupt:
        pass
