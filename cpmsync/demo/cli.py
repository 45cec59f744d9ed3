"""`cpmsync demo`: the whole system on embedded defaults, from one command.

Heavy imports (SQLAlchemy via the msgstore, numpy via the simulator) happen inside the command
so `cpmsync --help` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy

if TYPE_CHECKING:
    from rich.console import Console

    from cpmsync.demo.runner import DemoReport

__all__ = ["demo", "render_table"]


def _hostport(value: str, option: str = "--broker") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT", param_hint=option)
    return host.strip("[]"), int(port)


def render_table(report: DemoReport, console: Console) -> None:
    """The measured catch-up table, one row per discovery strategy."""
    from rich import box
    from rich.table import Table

    hours = report.poll_interval_s / 3600
    every = f"{report.poll_interval_s / 60:g} min" if hours < 1 else f"{hours:g} h"
    ch = report.changes
    total = ch.get("appended", 0) + ch.get("marked_read", 0) + ch.get("expunged", 0)
    synced = max((int(r["folders_synced"]) for r in report.catchup), default=0)
    t = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=(
            f"One catch-up sync after {total} changes in {ch.get('folders', 0)} of "
            f"{report.folders:,} folders, {synced:,} synced (measured on this run)"
        ),
        caption=(
            "Bytes, both directions, login excluded, counted by the daemon's IMAP client on a fresh "
            "connection from the same starting cache (the watermark from before the changes). "
            "LIST B = the discovery step alone (IMAP layer); predicted = the simulator's figure for "
            "this exact account; catch-up = discovery + syncing the changed folders (IMAP layer); "
            "socket = the same after COMPRESS=DEFLATE; vs CS = socket bytes against LIST-CHANGEDSINCE. "
            f"Energy/day: the simulator prices that catch-up's byte trace on {report.radio} (TLS, TCP/IP "
            f"headers and ACKs added), assuming one such catch-up every {every} "
            f"({86_400 / report.poll_interval_s:g}/day) with the radio idle in between."
        ),
    )
    # Short headers and no vertical rules: the result must stay readable in an 80-column terminal.
    cols = ("discovery", "LIST B", "predicted", "catch-up", "socket", "vs CS", "J/day", "%/day")
    for c in cols:
        t.add_column(c, justify="left" if c == "discovery" else "right", no_wrap=True)
    base = next(
        (r["wire_bytes"] for r in report.catchup if r["strategy"] == DiscoveryStrategy.LIST_CHANGEDSINCE),
        None,
    )
    short = {"LIST-CHANGEDSINCE": "CHANGEDSINCE", "LIST + STATUS": "LIST+STATUS"}
    for r in report.catchup:
        ratio = f"{r['wire_bytes'] / base:,.1f}×" if base else "-"
        t.add_row(
            short.get(str(r["label"]), str(r["label"])), f"{r['discovery_imap_bytes']:,}",
            f"{r.get('predicted_discovery_imap_bytes', 0):,}", f"{r['imap_bytes']:,}",
            f"{r['wire_bytes']:,}", ratio, f"{r['energy_j_per_day']:,.0f}", f"{r['battery_pct_per_day']:.2f}",
        )  # fmt: skip
    console.print(t)


def demo(
    folders: int = typer.Option(2000, "--folders", min=1, help="Conversation folders to seed."),
    duration: float = typer.Option(60.0, "--duration", min=0, help="Seconds of changes by another device."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the data directory (msgstore and cache) and say where."
    ),
    radio: str = typer.Option(
        "lte", "--radio", help="Radio profile for the energy column (lte, 3g, nr, wifi, …)."
    ),
    broker: str = typer.Option(
        "127.0.0.1:1883",
        "--broker",
        help="MQTT v5 broker to use (it must be running: `mosquitto -d` starts one on 127.0.0.1:1883).",
    ),
    messages: int = typer.Option(3, "--messages", min=1, help="Messages per folder when seeding."),
    changes_per_s: float = typer.Option(
        2.0, "--changes-per-s", min=0.1, help="Rate of the change generator."
    ),
    poll_interval_s: float = typer.Option(
        900.0, "--poll-interval-s", min=1, help="Energy column: one catch-up sync per this many seconds."
    ),
    json_summary: Path | None = typer.Option(
        None, "--json-summary", help="Also write the results as JSON here."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show the components' own log lines too."),
    web: str | None = typer.Option(
        None,
        "--web",
        help="Also serve the reference inbox page at HOST:PORT (e.g. 127.0.0.1:8025) and print its URL.",
    ),
) -> None:
    """Run msgstore, daemon, an app and a change generator with a running MQTT broker; show what they do."""
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from cpmsync.config import ConfigError
    from cpmsync.demo.broker import BrokerUnavailable
    from cpmsync.demo.runner import DemoOptions, Interrupted, run_demo
    from cpmsync.simulator import load_profile

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    host, port = _hostport(broker)
    try:
        load_profile(radio)  # fail now, not after the run
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="--radio") from None
    opts = DemoOptions(
        folders=folders,
        messages_per_folder=messages,
        duration_s=duration,
        keep=keep,
        radio=radio,
        broker_host=host,
        broker_port=port,
        json_summary=json_summary,
        changes_per_s=changes_per_s,
        poll_interval_s=poll_interval_s,
        web=_hostport(web, "--web") if web is not None else None,
    )
    level = logging.getLogger().level if verbose else logging.WARNING
    try:
        report = asyncio.run(run_demo(opts, console, log_level=level))
    except Interrupted as e:
        err.print(f"stopped cleanly ({e}); no process left behind")
        raise typer.Exit(128 + e.signum) from None
    except BrokerUnavailable as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    except Exception as e:  # one line, not a traceback (--verbose logs it in full)
        logging.getLogger("cpmsync.demo").debug("demo failed", exc_info=True)
        first: BaseException = e
        while isinstance(first, BaseExceptionGroup) and first.exceptions:
            first = first.exceptions[0]  # a TaskGroup wraps the one that matters
        err.print(f"[bold red]demo failed:[/] {type(first).__name__}: {first}")
        raise typer.Exit(1) from None
    console.rule("[bold]results")
    console.print(
        f"events received by the app: {report.events_received:,} "
        f"({report.events_after_first_sync:,} after the first sync: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(report.event_kinds.items()))
        + ")"
    )
    render_table(report, console)
    if json_summary is not None:
        json_summary.write_text(report.to_json() + "\n")
        console.print(f"wrote {json_summary}")
    for line in report.kept_hints:
        console.print(line)
