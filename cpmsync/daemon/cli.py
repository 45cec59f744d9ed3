"""`cpmsync daemon ...` and `cpmsync watch`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cpmsync.daemon.cache import Cache

app = typer.Typer(help="The device-side sync daemon.", no_args_is_help=True)

CONFIG_OPTION = typer.Option(..., "--config", "-c", help="Daemon TOML file (see config/daemon.toml).")


@app.command()
def run(config: Path = CONFIG_OPTION) -> None:
    """Run the daemon: keep the cache in sync with the message store and publish changes over MQTT."""
    from cpmsync.daemon.gc_tuning import service_start

    with service_start():  # every import of the daemon inside, asyncio's too
        import asyncio

        from cpmsync.config import ConfigError
        from cpmsync.daemon.service import run_daemon
        from cpmsync.daemon.settings import load_daemon_settings

        try:
            settings = load_daemon_settings(config, imap_login=True)
        except ConfigError as e:
            typer.echo(f"cpmsync daemon: {e}", err=True)
            raise typer.Exit(2) from None
    try:
        asyncio.run(run_daemon(settings))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except ConfigError as e:  # found at start, e.g. cache.path is not a cpmsync cache
        typer.echo(f"cpmsync daemon: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def stats(
    config: Path = CONFIG_OPTION,
    limit: int = typer.Option(20, "--limit", help="How many recent runs to list."),
    trace_csv: Path | None = typer.Option(
        None,
        "--trace-csv",
        help="Write the byte trace as CSV (t_s,direction,bytes) for `cpmsync simulate trace`; - = stdout.",
    ),
    conn: str | None = typer.Option(None, "--conn", help="With --trace-csv: only this connection id."),
) -> None:
    """Show recent sync runs and bytes per discovery strategy, from the cache."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from cpmsync.config import ConfigError
    from cpmsync.daemon.cache import Cache
    from cpmsync.daemon.settings import load_daemon_settings
    from cpmsync.daemon.stats import totals_by_strategy

    settings = load_daemon_settings(config)
    console = Console(highlight=False)
    if not settings.cache.path.expanduser().exists():
        console.print(f"no cache at {settings.cache.path}: the daemon has not synced yet")
        raise typer.Exit(1)
    from cpmsync.models.schema import CacheSchemaError

    try:
        cache = Cache.open(settings.cache.path, settings.account.id, upgrade=False)
    except CacheSchemaError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    except ConfigError as e:
        typer.echo(f"cpmsync daemon: {e}", err=True)
        raise typer.Exit(2) from None
    if trace_csv is not None:
        try:
            _export_trace(cache, trace_csv, conn)
        finally:
            cache.close()
        return
    try:
        runs = cache.runs(limit=1_000_000)
        acct = cache.account()
        pending = cache.outbox_count()
    finally:
        cache.close()
    # The account row gets its strategy only after a complete catch-up: until then (first sync
    # still running or interrupted) the latest run says which strategy is in use.
    strategy = acct.strategy or (runs[0].strategy if runs else None)
    console.print(
        f"account [bold]{acct.id}[/] server={acct.server or '-'} strategy={strategy or '-'} "
        f"watermark={acct.watermark} outbox={pending}"
    )

    def table(title: str) -> Table:
        # Fits 80 columns: short headers, no vertical rules, no outer padding.
        return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")

    per = table("bytes per strategy (IMAP layer / wire)")
    for col in ("strategy", "runs", "err", "fold", "in", "out", "w.in", "w.out", "w/run"):
        per.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=True)
    for t in totals_by_strategy(runs):
        per.add_row(
            t.strategy,
            str(t.runs),
            str(t.errors),
            str(t.folders_touched),
            str(t.bytes_in),
            str(t.bytes_out),
            str(t.wire_bytes_in),
            str(t.wire_bytes_out),
            f"{t.mean_wire_bytes:.0f}",
        )
    console.print(per)
    recent = table(f"last {min(limit, len(runs))} sync runs (UTC)")
    # Wire bytes only here (the IMAP-layer figures are in the table above); the error wraps.
    for col in ("started", "s", "strategy", "fold", "w.in", "w.out", "error"):
        left = col in ("started", "strategy", "error")
        recent.add_column(col, justify="left" if left else "right", no_wrap=col != "error")
    for r in runs[:limit]:
        secs = f"{(r.ended - r.started).total_seconds():.1f}" if r.ended else "…"
        recent.add_row(
            r.started.strftime("%m-%d %H:%M:%S"),
            secs,
            r.strategy,
            str(r.folders_touched),
            str(r.wire_bytes_in),
            str(r.wire_bytes_out),
            r.error or "",
        )
    console.print(recent)


def _export_trace(cache: Cache, path: Path, conn: str | None) -> None:
    import sys

    from cpmsync.daemon.stats import write_trace_csv

    rows = cache.trace(conn)
    if not rows:
        which = f"for connection {conn} " if conn else ""
        typer.echo(f"cpmsync daemon: no trace {which}in the cache (is [trace] enabled?)", err=True)
        raise typer.Exit(1)
    if str(path) == "-":
        n = write_trace_csv(rows, sys.stdout)
    else:
        try:
            with path.open("w", newline="") as f:
                n = write_trace_csv(rows, f)
        except OSError as e:
            typer.echo(f"cpmsync daemon: cannot write {path}: {e.strerror}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"wrote {n} trace rows to {path}", err=True)


def watch(
    config: Path = CONFIG_OPTION,
    folder: str | None = typer.Option(
        None, "--folder", "-f", help="Only this mailbox (its name, not encoded)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of rich text."),
    count: int | None = typer.Option(None, "--count", "-n", help="Exit after this many events."),
) -> None:
    """Subscribe to the daemon's MQTT topics and print events as they arrive."""
    import asyncio

    from cpmsync.daemon.settings import load_daemon_settings
    from cpmsync.daemon.watch import watch_loop

    settings = load_daemon_settings(config)
    try:
        asyncio.run(watch_loop(settings, folder=folder, as_json=as_json, count=count))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
