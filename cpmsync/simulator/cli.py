"""`cpmsync simulate ...`: UNI bytes and radio energy of each sync strategy.

Heavy imports (numpy, matplotlib, the codec) happen inside the commands so `cpmsync --help` stays fast.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.table import Table

    from cpmsync.simulator.runner import Row

app = typer.Typer(help="UNI bytes and radio energy per sync strategy.", no_args_is_help=True)


@functools.cache
def _console() -> Console:
    """stdout, built at first use (rich stays off other commands' start-up). Wide tables: when
    output is piped or captured, do not squeeze columns into 80 characters."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


STRATEGY_HELP = (
    "list-status-per-folder (LIST + STATUS per folder), list-status (RFC 5819) or list-changedsince (the CR)"
)


def _fail(msg: str) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {msg}", highlight=False)
    return typer.Exit(2)


def _discovery_option(flag: str, value: str) -> DiscoveryStrategy:
    try:
        return DiscoveryStrategy(value)
    except ValueError:
        names = ", ".join(DiscoveryStrategy)
        raise _fail(f"{flag} must be one of {names}, not {value!r}") from None


@contextmanager
def _progress(total_s: float, what: str) -> Iterator[Callable[[float], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*cols, console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task(what, total=total_s)
        yield lambda ds: prog.advance(task, ds)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def _rows_table(rows: Sequence[Row], title: str) -> Table:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for col, j in (
        ("strategy", "left"), ("radio", "left"), ("MB up/day", "right"), ("MB down/day", "right"),
        ("wakes/day", "right"), ("radio-on s/day", "right"), ("J/day", "right"),
        ("sync J/day above idle", "right"), ("% battery/day", "right"), ("mean delay s", "right"),
    ):  # fmt: skip
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(
            r.strategy, r.radio, _mb(r.wire_bytes_up_per_day), _mb(r.wire_bytes_down_per_day),
            f"{r.radio_wakes_per_day:,.0f}", f"{r.radio_on_s_per_day:,.0f}", f"{r.energy_j_per_day:,.0f}",
            f"{r.sync_energy_j_per_day:,.1f}", f"{r.battery_pct_per_day:.2f}",
            f"{r.mean_change_delay_s:,.1f}",
        )  # fmt: skip
    return t


def write_rows(rows: Sequence[Row], csv_path: Path, json_path: Path) -> None:
    """CSV and JSON copies of a result table (one object per scenario x strategy x radio)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    dicts = [r.as_dict() for r in rows]
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dicts[0]) if dicts else [])
        w.writeheader()
        w.writerows(dicts)
    json_path.write_text(json.dumps(dicts, indent=1) + "\n")


@app.command("bytes")
def bytes_cmd(
    folders: int = typer.Option(1000, "--folders", min=1, max=1_000_000, help="Folders in the account."),
    changed: int = typer.Option(3, "--changed", min=0, help="Folders changed since the last sync."),
    strategy: str = typer.Option("list-changedsince", "--strategy", help=STRATEGY_HELP),
    compress: bool = typer.Option(False, "--compress", help="COMPRESS=DEFLATE (RFC 4978) after login."),
    ipv6: bool = typer.Option(
        False, "--ipv6", help="IPv6 headers (72 B per segment) instead of IPv4 (52 B)."
    ),
    tls: str = typer.Option("1.3", "--tls", help="TLS version: 1.3, 1.2 (AES-GCM) or none."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Bytes of one catch-up sync (connect, find changed folders, fetch them, log out), per layer."""
    from rich.table import Table

    from cpmsync.simulator.account import make_account
    from cpmsync.simulator.catchup import account_catchup_bytes
    from cpmsync.simulator.wire import WireConfig

    picked_strategy = _discovery_option("--strategy", strategy)
    if tls not in ("1.3", "1.2", "none"):
        raise _fail("--tls must be 1.3, 1.2 or none")
    if changed > folders:
        raise _fail(f"--changed ({changed}) cannot exceed --folders ({folders})")
    acct = make_account(folders, seed=1)
    names = list(acct.folders)
    step = max(1, folders // max(1, changed))
    picked = names[::step][:changed]
    wc = account_catchup_bytes(acct, picked, picked_strategy, compress, wire=WireConfig(ipv6=ipv6, tls=tls))  # type: ignore[arg-type]
    result = {
        "folders": folders,
        "changed": changed,
        "strategy": picked_strategy,
        "compress": compress,
        **wc.as_dict(),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    t = Table(
        title=f"one catch-up sync: {folders:,} folders, {changed:,} changed, {picked_strategy}"
        + (" + DEFLATE" if compress else "")
    )
    t.add_column("layer")
    t.add_column("up (B)", justify="right")
    t.add_column("down (B)", justify="right")
    for label, key in (
        ("IMAP", "imap"),
        ("after COMPRESS", "stream"),
        ("TLS records", "tls"),
        ("on the wire (IP)", "wire"),
    ):
        t.add_row(label, f"{result[key + '_up']:,}", f"{result[key + '_down']:,}")
    t.add_row("TCP segments", f"{wc.segments_up:,}", f"{wc.segments_down:,}")
    t.add_row("pure ACKs", f"{wc.pure_acks_up:,}", f"{wc.pure_acks_down:,}")
    _console().print(t)


@app.command()
def run(
    scenario: str = typer.Argument(
        ..., help="A shipped scenario (light, heavy-group-chat, archive) or a TOML path."
    ),
    radio: str = typer.Option("lte", "--radio", help="lte, 3g, nr, wifi, all, a profile name, or a path."),
    out: Path | None = typer.Option(None, "--out", help="Write CSV, JSON and a timeline PNG here."),
    strategy: list[str] = typer.Option([], "--strategy", help="Only these strategy labels (repeatable)."),
) -> None:
    """Run a scenario for every strategy (+/- COMPRESS, +/- push) on the chosen radios."""
    from cpmsync.simulator.runner import resolve_radios, run_scenario
    from cpmsync.simulator.scenario import all_strategy_specs, load_scenario

    scn = load_scenario(scenario)
    radios = resolve_radios(radio)
    specs = all_strategy_specs()
    if strategy:
        specs = [s for s in specs if s.label in strategy or s.discovery in strategy]
        if not specs:
            raise _fail(f"no strategy matches {strategy}; labels look like list-changedsince+deflate+push")
    with _progress(scn.duration_s * len(specs), f"{scn.name}: simulating {len(specs)} strategies") as tick:
        rows = run_scenario(scn, radios, specs, progress=tick)
    _console().print(_rows_table(rows, f"{scn.name}: {scn.description}"))
    if out is not None:
        write_rows(rows, out / f"{scn.name}.csv", out / f"{scn.name}.json")
        png = _timeline(scn, radios[0], out / f"{scn.name}-timeline-{radios[0].name}.png")
        _console().print(f"wrote {out / (scn.name + '.csv')}, {out / (scn.name + '.json')}, {png}")


def _timeline(scn: Any, profile: Any, path: Path, hour: int = 18) -> Path:
    """One hour (from `hour`:00) of RRC state and transfers: LIST-CHANGEDSINCE with push, and polling."""
    from cpmsync.simulator.plots import plot_timeline
    from cpmsync.simulator.rrc import simulate_radio
    from cpmsync.simulator.scenario import StrategySpec
    from cpmsync.simulator.workload import plan_day, plan_transfers

    t0 = hour * 3600.0
    panels = []
    windows = []
    for spec in (
        StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, True),
        StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, False),
    ):
        plan = plan_day(scn, spec)
        rp = plan_transfers(plan, profile)
        res = simulate_radio(profile, rp.transfers, end_s=plan.duration_s, keep_segments=True)
        mode = "push (NOTIFY + IDLE)" if spec.push else f"polling every {scn.device.poll_interval_s:.0f} s"
        label = f"{scn.name}, {profile.name}, LIST-CHANGEDSINCE, {mode}: {res.energy_j:,.0f} J/day"
        panels.append((label, profile, res, rp.transfers))
        windows.append((t0, t0 + 3600))
    # zoom on the first poll of the hour: promotion, transfers and each tail phase become visible
    poll_label, _, poll_res, poll_tr = panels[1]
    first = next((tr.t_s for tr in poll_tr if tr.t_s >= t0), t0)
    panels.append((f"zoom: one poll ({poll_label.split(':')[0]})", profile, poll_res, poll_tr))
    windows.append((first - 2.0, first + profile.connected_s + 8.0))
    return plot_timeline(panels, path, t0_s=t0, t1_s=t0 + 3600, windows=windows)


@app.command()
def schedule(
    config: Path | None = typer.Option(
        None, "--config", help="A daemon.toml; default: the daemon's defaults."
    ),
    radio: str = typer.Option("lte", "--radio", help="lte, 3g, nr, wifi, all, a profile name, or a path."),
    nat_timeout_s: float = typer.Option(600.0, "--nat-timeout", min=0, help="Carrier NAT idle timeout, s."),
    changes_per_day: float = typer.Option(40.0, "--changes-per-day", min=0, help="Server changes per day."),
    actions_per_day: float = typer.Option(
        0.0, "--actions-per-day", min=0, help="The user's own actions on the device (apps over MQTT) per day."
    ),
    actions_per_burst: int = typer.Option(
        1, "--actions-per-burst", min=1, help="Actions arriving together (within the action window)."
    ),
    poll_s: float | None = typer.Option(
        None, "--poll", min=1, help="Price a client polling every S s instead."
    ),
    folders: int = typer.Option(1000, "--folders", min=1, help="Folders in the account."),
    discovery: str = typer.Option("list-changedsince", "--discovery", help=STRATEGY_HELP),
    server_keepalive_s: float = typer.Option(
        0.0, "--server-keepalive", min=0, help="The server's IDLE keep-alive, s (Dovecot 120; msgstore 0)."
    ),
    battery_wh: float | None = typer.Option(
        None, "--battery-wh", min=0.1, help="Battery capacity (default 15.4 Wh)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Price one day of the daemon's wake schedule as configured (or of a polling client)."""
    from rich.table import Table

    from cpmsync.config import ConfigError
    from cpmsync.daemon.settings import DaemonSettings, load_daemon_settings
    from cpmsync.simulator.runner import BATTERY_J, resolve_radios
    from cpmsync.simulator.schedule_price import ScheduleSpec, price_schedule

    picked_discovery = _discovery_option("--discovery", discovery)
    try:
        settings = load_daemon_settings(config) if config is not None else DaemonSettings()
    except ConfigError as e:
        raise _fail(str(e)) from None
    if poll_s is not None:
        spec = ScheduleSpec(f"poll every {poll_s:g} s", poll_s=poll_s)
    else:
        spec = ScheduleSpec("daemon", settings=settings, server_keepalive_s=server_keepalive_s)
    battery_j = battery_wh * 3600 if battery_wh is not None else BATTERY_J
    out = []
    prices = price_schedule(
        spec,
        resolve_radios(radio),
        nat_timeout_s=nat_timeout_s,
        changes_per_day=changes_per_day,
        folders=folders,
        discovery=picked_discovery,
        actions_per_day=actions_per_day,
        actions_per_burst=actions_per_burst,
    )
    for p in prices:
        d = p.as_dict()
        d["battery_pct_per_day"] = 100 * p.joules_per_day / battery_j
        out.append(d)
    if as_json:
        typer.echo(json.dumps(out if len(out) > 1 else out[0]))
        return
    t = Table(
        title=f"{spec.label}: {changes_per_day:g} changes/day, NAT {nat_timeout_s:g} s, {folders:,} folders"
    )
    cols = (
        "radio",
        "wakes/day",
        "J/day",
        "sync J/day",
        "% battery",
        "median delay s",
        "p95 delay s",
        "heartbeat s",
    )
    for c in cols:
        t.add_column(c, justify="left" if c == "radio" else "right")
    for d in out:
        hb = d["heartbeat_s"]
        t.add_row(
            str(d["radio"]), f"{d['wakes_per_day']:,.0f}", f"{d['joules_per_day']:,.0f}",
            f"{d['sync_joules_per_day']:,.0f}", f"{d['battery_pct_per_day']:.2f}",
            f"{d['median_delay_s']:,.1f}", f"{d['p95_delay_s']:,.1f}", "-" if hb is None else f"{hb:,.0f}",
        )  # fmt: skip
    _console().print(t)


@app.command()
def trace(
    file: Path = typer.Argument(..., help="CSV (t_s,direction,bytes) or JSON lines; see docs/energy.md."),
    radio: str = typer.Option("lte", "--radio", help="lte, 3g, nr, wifi, all, a profile name, or a path."),
    layer: str = typer.Option(
        "stream", "--layer", help="stream: add TLS/TCP/IP/ACK overhead; wire: bytes are final."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a timeline PNG of the first hour."),
) -> None:
    """Cost a recorded (time, direction, bytes) trace on a radio, ARO style."""
    from rich.table import Table

    from cpmsync.simulator.plots import plot_timeline
    from cpmsync.simulator.rrc import simulate_radio
    from cpmsync.simulator.runner import BATTERY_J, resolve_radios
    from cpmsync.simulator.trace import load_trace, to_wire_transfers

    if layer not in ("stream", "wire"):
        raise _fail("--layer must be stream or wire")
    rows = load_trace(file)
    if layer == "stream":
        transfers, up, down = to_wire_transfers(rows)
    else:
        transfers = rows
        up = sum(t.nbytes for t in rows if t.direction == "up")
        down = sum(t.nbytes for t in rows if t.direction == "down")
    results = []
    for profile in resolve_radios(radio):
        r = simulate_radio(profile, transfers, keep_segments=plot is not None)
        results.append((profile, r))
    out = [
        {
            "radio": p.name, "duration_s": r.end_s - r.start_s, "wire_bytes_up": up, "wire_bytes_down": down,
            "energy_j": r.energy_j, "radio_wakes": r.wakes, "radio_on_s": r.radio_on_s,
            "battery_pct": 100 * r.energy_j / BATTERY_J, "time_in_state_s": r.time_in_state_s,
        }
        for p, r in results
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(out))
    else:
        t = Table(title=f"{file.name}: {len(rows):,} rows over {results[0][1].end_s:,.0f} s")
        for c in ("radio", "wire B up", "wire B down", "wakes", "radio-on s", "energy J", "% battery"):
            t.add_column(c, justify="left" if c == "radio" else "right")
        for d in out:
            t.add_row(
                str(d["radio"]), f"{up:,}", f"{down:,}", f"{d['radio_wakes']:,}", f"{d['radio_on_s']:,.1f}",
                f"{d['energy_j']:,.1f}", f"{d['battery_pct']:.3f}",
            )  # fmt: skip
        _console().print(t)
    if plot is not None:
        p, r = results[0]
        plot_timeline(
            [(f"{file.name} on {p.name}", p, r, transfers)], plot, t0_s=0.0, t1_s=min(3600.0, r.end_s)
        )
        if not as_json:
            _console().print(f"wrote {plot}")


@app.command()
def profiles() -> None:
    """List the shipped radio profiles (copy one and pass its path to --radio to make your own)."""
    from rich.table import Table

    from cpmsync.simulator.radio import _profiles_dir, builtin_profile_names, load_profile

    t = Table(title=f"radio profiles in {_profiles_dir()}")
    for c in ("name", "technology", "tail s", "promotion ms", "description"):
        t.add_column(c)
    for n in builtin_profile_names():
        p = load_profile(n)
        t.add_row(n, p.technology, f"{p.tail_s:.2f}", f"{p.idle.promotion_ms or 0:.0f}", p.description)
    _console().print(t)


@app.command()
def fleet(
    devices: int = typer.Option(100_000, "--devices", min=1, help="Device-days to simulate."),
    radio: str = typer.Option(
        "lte", "--radio", help="A profile name or path (closed form; 3G FACH not modelled)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Closed-form energy of a varied fleet of device-days, every strategy on the same device-days."""
    import time

    import numpy as np
    from rich.table import Table

    from cpmsync.simulator.fleet import fleet_energy_by_strategy, make_fleet
    from cpmsync.simulator.runner import BATTERY_J, idle_floor_j, resolve_radios

    profile = resolve_radios(radio)[0]
    fl = make_fleet(devices, seed=seed)
    t = time.perf_counter()
    results = fleet_energy_by_strategy(fl, profile)
    dt = time.perf_counter() - t
    floor_j = idle_floor_j(profile, 86400.0)
    tab = Table(
        title=f"{devices:,} device-days x {len(fl.specs)} strategies on {profile.name} in {dt:.1f} s "
        f"({devices * len(fl.specs) / dt:,.0f} strategy-device-days/s); every row is the same device-days"
    )
    for c in (
        "strategy",
        "median J/day",
        "mean J/day",
        "mean sync J/day above idle",
        "mean % battery",
        "mean MB down/day",
        "mean wakes/day",
    ):
        tab.add_column(c, justify="left" if c == "strategy" else "right")
    for spec, res in zip(fl.specs, results, strict=True):
        e = res.energy_j
        tab.add_row(
            spec.label, f"{np.median(e):,.0f}", f"{e.mean():,.0f}", f"{e.mean() - floor_j:,.1f}",
            f"{100 * e.mean() / BATTERY_J:.2f}", _mb(res.bytes_down.mean()), f"{res.wakes.mean():,.0f}",
        )  # fmt: skip
    _console().print(tab)


@app.command()
def report(
    out: Path = typer.Option(Path("docs"), "--out", help="Directory for the .md files and img/*.png."),
    only: str = typer.Option(
        "all", "--only", help="all, energy (docs/energy.md) or frontier (docs/push-energy.md)."
    ),
) -> None:
    """Regenerate docs/energy.md and docs/push-energy.md, their tables and plots."""
    from cpmsync.simulator.frontier import build_frontier
    from cpmsync.simulator.report import build_report

    if only not in ("all", "energy", "frontier"):
        raise _fail("--only must be all, energy or frontier")
    if only in ("all", "energy"):
        with _progress(1.0, "energy report") as tick:
            path = build_report(out, progress=tick)
        _console().print(f"wrote {path}")
    if only in ("all", "frontier"):
        with _progress(1.0, "push energy frontier") as tick:
            path = build_frontier(out, progress=tick)
        _console().print(f"wrote {path}")
