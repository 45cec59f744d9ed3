"""`cpmsync demo`: msgstore, MQTT broker, daemon, an app and another device, in one asyncio process.

Everything runs as tasks of one TaskGroup in this process (the msgstore server, the daemon as
`run_daemon` runs it as a service, the app's subscriber, the change generator); the broker is one
that already runs (`demo.broker`): without it the demo says so and starts nothing. SIGINT/SIGTERM
set one stop event: each phase is waited on together with it, so a signal ends the current phase
and the `finally` blocks stop the parts in reverse order of start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.demo.broker import Broker, require_broker
from cpmsync.demo.changes import ChangeGenerator, ChangeSettings
from cpmsync.demo.measure import (
    STRATEGIES,
    CatchupMeasurement,
    EnergyEstimate,
    energy_per_day,
    measure_catchup,
    predict_discovery_bytes,
    snapshot_cache,
)
from cpmsync.demo.viewer import EventViewer

__all__ = ["DemoOptions", "DemoReport", "Interrupted", "run_demo"]

log = logging.getLogger("cpmsync.demo")

T = TypeVar("T")

DEMO_USER = "demo"
SEED_BATCH_FOLDERS = 100  # progress and Ctrl-C granularity while seeding
SERVER_READY_TIMEOUT_S = 30.0
SUBSCRIBE_TIMEOUT_S = 15.0
FIRST_SYNC_TIMEOUT_S = 600.0
SETTLE_QUIET_S = 1.5  # after the last change: no new event for this long = the daemon caught up
SETTLE_MAX_S = 20.0
STOP_DAEMON_TIMEOUT_S = 20.0
CLEAR_RETAINED_TIMEOUT_S = 20.0
PROGRESS_POLL_S = 0.25
TMPFS_MIN_FREE_BYTES = 1 << 30


@dataclass
class DemoOptions:
    folders: int = 2000
    messages_per_folder: int = 3
    duration_s: float = 60.0
    keep: bool = False
    radio: str = "lte"
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    json_summary: Path | None = None
    changes_per_s: float = 2.0
    poll_interval_s: float = 900.0  # the energy column: one catch-up per poll
    seed: int = 0
    web: tuple[str, int] | None = None  # serve the inbox page (cpmsync/app/web.py) here


@dataclass
class DemoReport:
    """What the run showed; written as JSON with --json-summary."""

    folders: int
    messages: int
    duration_s: float
    broker: str
    data_dir: str | None
    first_sync: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    events_received: int = 0
    events_after_first_sync: int = 0
    event_kinds: dict[str, int] = field(default_factory=dict)
    syncs: list[dict[str, Any]] = field(default_factory=list)
    catchup: list[dict[str, Any]] = field(default_factory=list)
    radio: str = ""
    poll_interval_s: float = 0.0
    kept_hints: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; everything has been stopped by the time this leaves run_demo."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SeedAborted(Exception):
    pass


async def _until(stop: asyncio.Event, aw: Awaitable[T]) -> T:
    """Await `aw` unless `stop` is set first; then cancel it and raise `_Stopped`."""
    task = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.cancelled() or not task.done():
        raise _Stopped
    return task.result()


class _Stopped(Exception):
    """A phase was cut short by the stop event."""


@contextlib.contextmanager
def _quiet_logs(level: int) -> Any:
    """The demo's own screen is the output; component INFO logs would drown it."""
    names = ("cpmsync", "aiomqtt", "paho", "sqlalchemy", "mqtt")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        # paho's "mqtt" logger warns about queued publishes during the first-sync flood: not news here.
        logging.getLogger(n).setLevel(max(level, logging.ERROR) if n == "mqtt" else level)
    try:
        yield
    finally:
        for n, lv in saved.items():
            logging.getLogger(n).setLevel(lv)


class _SyncPrinter:
    """Prints each finished sync run of the daemon (strategy, folders, bytes) from its cache."""

    def __init__(self, cache: Any, console: Console) -> None:
        self.cache = cache
        self.console = console
        self.last_id = 0
        self.show = False
        self.rows: list[dict[str, Any]] = []

    def poll(self) -> None:
        for r in reversed(self.cache.runs(limit=50)):
            if r.id <= self.last_id or r.ended is None:
                continue
            self.last_id = r.id
            ms = (r.ended - r.started).total_seconds() * 1000
            row = {
                "id": r.id, "strategy": r.strategy, "folders": r.folders_touched,
                "imap_bytes_in": r.bytes_in, "imap_bytes_out": r.bytes_out,
                "wire_bytes_in": r.wire_bytes_in, "wire_bytes_out": r.wire_bytes_out,
                "ms": round(ms, 1), "error": r.error,
            }  # fmt: skip
            self.rows.append(row)
            if self.show:
                err = f" [red]{r.error}[/]" if r.error else ""
                n = r.folders_touched
                self.console.print(
                    f"[bold]sync[/] #{r.id:<4}{r.strategy:<8} {n:>3} folder{'' if n == 1 else 's'}  "
                    f"IMAP in {r.bytes_in:,} out {r.bytes_out:,} B · "
                    f"socket in {r.wire_bytes_in:,} out {r.wire_bytes_out:,} B · {ms:.0f} ms{err}",
                    highlight=False,
                    no_wrap=True,
                    overflow="ellipsis",
                )

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(PROGRESS_POLL_S)


def _make_workdir() -> Path:
    """A private temp dir, in RAM (/dev/shm) when there is room: the cache commits once per folder,
    and on a busy disk each fsync costs ~100-300 ms (measured here), which would make the daemon's
    first sync of 2,000 folders take minutes instead of seconds. TMPDIR is used otherwise."""
    shm = Path("/dev/shm")
    parent: str | None = None
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize >= TMPFS_MIN_FREE_BYTES and os.access(shm, os.W_OK):
            parent = str(shm)
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="cpmsync-demo-", dir=parent))


async def run_demo(opts: DemoOptions, console: Console, *, log_level: int = logging.WARNING) -> DemoReport:
    """The whole demo; raises Interrupted after a clean stop on SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[int] = []

    main = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if not got:
            console.print(
                f"\n[yellow]{signal.Signals(signum).name}: stopping everything… (again to hurry)[/]"
            )
        elif len(got) == 1 and main is not None:
            # Impatient: cancel instead of waiting for graceful stops; `finally` blocks still
            # stop the msgstore and the daemon and remove the data dir.
            console.print("[yellow]cancelling…[/]")
            main.cancel()
        got.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    workdir: Path | None = None
    run_id = uuid.uuid4().hex[:8]  # unique topics and account: other runs' retained messages never show
    report: DemoReport | None = None
    try:
        # No broker: say what to do before seeding anything (BrokerUnavailable).
        broker = await _until(stop, require_broker(opts.broker_host, opts.broker_port))
        workdir = _make_workdir()
        with _quiet_logs(log_level):
            report = await _run(opts, console, stop, workdir, run_id, broker)
        return report
    except _Stopped:
        raise Interrupted(got[0] if got else signal.SIGINT) from None
    except asyncio.CancelledError:
        if got:
            raise Interrupted(got[0]) from None
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if workdir is not None and opts.keep:
            workdir = _persist(workdir)
            hints = kept_hints(workdir, f"demo-{run_id}")
            if report is not None:
                report.kept_hints = hints  # printed after the results
            else:
                for line in hints:
                    console.print(line)
        elif workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _persist(workdir: Path) -> Path:
    """--keep must survive a reboot: move a RAM (/dev/shm) work dir to TMPDIR once everything stopped."""
    if not workdir.is_relative_to("/dev/shm"):
        return workdir
    target = Path(tempfile.mkdtemp(prefix="cpmsync-demo-"))
    try:
        for item in workdir.iterdir():
            shutil.move(str(item), target / item.name)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        return workdir  # kept where it is; the hint still says where
    shutil.rmtree(workdir, ignore_errors=True)
    return target


def kept_hints(workdir: Path, account: str) -> list[str]:
    """With --keep: write a daemon.toml for `cpmsync daemon stats`; the lines that say where things are."""
    cache = workdir / "cache.sqlite"
    lines = [f"data kept in [bold]{workdir}[/]"]
    if cache.exists():
        toml = workdir / "daemon.toml"
        toml.write_text(
            "# Written by `cpmsync demo --keep`: enough for `cpmsync daemon stats`.\n"
            f'[account]\nid = "{account}"\n\n[cache]\npath = "{cache}"\n'
        )
        lines.append(f"  sync runs:  cpmsync daemon stats --config {toml}")
    lines.append(f"  the store:  cpmsync msgstore serve --db sqlite:///{workdir / 'msgstore.sqlite'}")
    return lines


async def _seed(opts: DemoOptions, store: Any, console: Console, stop: asyncio.Event) -> list[str]:
    from cpmsync.msgstore.seed import seed_with_progress

    abort = threading.Event()

    def check_abort() -> None:
        if abort.is_set():
            raise _SeedAborted

    work = asyncio.ensure_future(
        asyncio.to_thread(
            seed_with_progress,
            console,
            store,
            DEMO_USER,
            opts.folders,
            opts.messages_per_folder,
            seed=opts.seed,
            batch_folders=SEED_BATCH_FOLDERS,
            after_batch=check_abort,
        )
    )
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not work.done():
            abort.set()  # the thread stops at the next batch; wait so the store is not closed under it
            with contextlib.suppress(_SeedAborted):
                await asyncio.shield(work)
    if stop.is_set():
        raise _Stopped
    return work.result().folders


async def _run(
    opts: DemoOptions, console: Console, stop: asyncio.Event, workdir: Path, run_id: str, broker: Broker
) -> DemoReport:
    from cpmsync.msgstore.settings import ExtensionsSection, MsgstoreSettings, ServerSection, StoreSection
    from cpmsync.msgstore.store import MessageStore

    password = secrets.token_urlsafe(12)
    # Built section by section so that CPMSYNC_* variables of a real deployment cannot leak in.
    msettings = MsgstoreSettings()
    msettings.server = ServerSection(listen=["127.0.0.1:0"])
    msettings.store = StoreSection(
        db_url=f"sqlite:///{workdir / 'msgstore.sqlite'}", sqlite_synchronous="NORMAL"
    )
    msettings.extensions = ExtensionsSection()
    console.rule("[bold]cpmsync demo")
    console.print(f"data dir {workdir}" + ("" if opts.keep else " (removed at the end; --keep keeps it)"))
    store = MessageStore.from_settings(msettings)
    try:
        store.add_user(DEMO_USER, password)
        t0 = time.monotonic()
        names = await _seed(opts, store, console, stop)
        seeded = len(names) * opts.messages_per_folder
        console.print(
            f"msgstore: user [bold]{DEMO_USER}[/], {len(names):,} folders, {seeded:,} messages "
            f"seeded in {time.monotonic() - t0:.1f} s"
        )
        console.print(f"mqtt: using the MQTT broker at {broker.address} (it answered an MQTT v5 CONNECT)")
        report = DemoReport(
            folders=len(names),
            messages=seeded,
            duration_s=opts.duration_s,
            broker=broker.address,
            data_dir=str(workdir) if opts.keep else None,
            radio=opts.radio,
            poll_interval_s=opts.poll_interval_s,
        )
        prefix = f"cpmsync-demo-{run_id}"
        try:
            await _services(
                opts, console, stop, workdir, msettings, store, broker, password, names, report, prefix
            )
        finally:
            await _clear_retained(broker, prefix)
    finally:
        store.close()
    return report


async def _clear_retained(broker: Broker, prefix: str) -> None:
    """Leave a shared broker as we found it: empty every retained topic this run left under its prefix."""
    import aiomqtt

    with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
        async with asyncio.timeout(CLEAR_RETAINED_TIMEOUT_S):
            async with aiomqtt.Client(
                broker.host, broker.port, identifier=f"{prefix}-cleanup", protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                await client.subscribe(f"{prefix}/#", qos=0)
                topics: set[str] = set()
                try:
                    async with asyncio.timeout(1.0):  # retained messages arrive right after SUBSCRIBE
                        async for msg in client.messages:
                            if msg.retain and msg.payload:
                                topics.add(str(msg.topic))
                except TimeoutError:
                    pass
                await client.unsubscribe(f"{prefix}/#")
                for t in sorted(topics):
                    await client.publish(t, b"", qos=1, retain=True)


async def _services(
    opts: DemoOptions,
    console: Console,
    stop: asyncio.Event,
    workdir: Path,
    msettings: Any,
    store: Any,
    broker: Broker,
    password: str,
    names: list[str],
    report: DemoReport,
    prefix: str,
) -> None:
    from cpmsync.daemon.settings import (
        AccountSettings,
        CacheSettings,
        DaemonSettings,
        ImapSettings,
        MqttSettings,
        TraceSettings,
    )
    from cpmsync.msgstore.server import ImapServer

    stopped = False
    async with asyncio.TaskGroup() as tg:
        server = ImapServer(msettings, store)
        tg.create_task(server.serve(), name="demo-msgstore")
        try:
            await _until(stop, asyncio.wait_for(server.ready.wait(), SERVER_READY_TIMEOUT_S))
            caps = msettings.extensions.capabilities()
            lcs = "LIST-CHANGEDSINCE, " if "LIST-CHANGEDSINCE" in caps else ""
            console.print(f"msgstore: imap://127.0.0.1:{server.port} [dim]({lcs}{len(caps)} capabilities)[/]")
            account = f"demo-{prefix.rsplit('-', 1)[-1]}"
            dsettings = DaemonSettings()
            dsettings.account = AccountSettings(id=account)
            dsettings.imap = ImapSettings(
                host="127.0.0.1",
                port=server.port,
                tls="none",
                username=DEMO_USER,
                password=SecretStr(password),
                idle_folder="Default",
            )
            dsettings.mqtt = MqttSettings(
                host=broker.host,
                port=broker.port,
                topic_prefix=prefix,
                client_id=f"{prefix}-daemon",
                session_expiry_s=0,  # nothing of this run stays on a shared broker
            )
            dsettings.cache = CacheSettings(path=workdir / "cache.sqlite")
            dsettings.trace = TraceSettings(enabled=False)
            viewer = EventViewer(dsettings.mqtt, account, console)
            viewer_task = tg.create_task(viewer.run(), name="demo-app")
            try:
                await _until(stop, asyncio.wait_for(viewer.subscribed.wait(), SUBSCRIBE_TIMEOUT_S))
                console.print(f"app: subscribed to {prefix}/{account}/status and …/folders/+/events")
                if opts.web is not None:
                    from cpmsync.app.web import serve_inbox

                    def _url(bridge: Any) -> None:
                        console.print(f"inbox page: [bold]{bridge.url}[/] (live; it acts through the daemon)")

                    web = tg.create_task(serve_inbox(dsettings, *opts.web, on_ready=_url), name="demo-web")
                    viewer_task.add_done_callback(lambda _t: web.cancel())
                await _daemon_phases(
                    opts, console, stop, tg, dsettings, viewer, names, report, workdir, store
                )
            finally:
                viewer_task.cancel()
        except _Stopped:
            # Caught inside the TaskGroup so the server still stops gracefully (BYE to sessions)
            # instead of being cancelled, and no ExceptionGroup wraps a plain Ctrl-C.
            stopped = True
        finally:
            server.stop()
    if stopped:
        raise _Stopped


async def _daemon_phases(
    opts: DemoOptions,
    console: Console,
    stop: asyncio.Event,
    tg: asyncio.TaskGroup,
    dsettings: Any,
    viewer: EventViewer,
    names: list[str],
    report: DemoReport,
    workdir: Path,
    store: Any,
) -> None:
    from cpmsync.daemon.cache import open_cache
    from cpmsync.daemon.service import run_daemon

    # The demo's own reader of the daemon's cache (sync runs, progress, outbox). Opened first so
    # the schema exists before the daemon opens the same file.
    cache = open_cache(dsettings)
    daemon_stop = asyncio.Event()  # the demo owns SIGINT/SIGTERM; this stops the daemon
    daemon_ready = asyncio.Event()
    daemon_task = tg.create_task(
        run_daemon(dsettings, install_signals=False, stop=daemon_stop, on_ready=daemon_ready.set),
        name="demo-daemon",
    )
    printer = _SyncPrinter(cache, console)
    printer_task = tg.create_task(printer.run(), name="demo-sync-printer")
    try:
        # 1. The daemon's first sync: every folder, every message -> thousands of events.
        t0 = time.monotonic()
        with Progress(
            TextColumn("[bold]daemon first sync[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("folders · app received {task.fields[events]:,} events"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tid = progress.add_task("sync", total=len(names) + 1, events=0)  # + INBOX

            async def first_sync() -> None:
                while not daemon_ready.is_set():
                    if daemon_task.done():
                        raise RuntimeError("the daemon stopped before its first sync finished")
                    progress.update(tid, completed=len(cache.folders()), events=viewer.events)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(PROGRESS_POLL_S * 2):
                            await daemon_ready.wait()
                progress.update(tid, completed=len(cache.folders()), events=viewer.events)

            await _until(stop, asyncio.wait_for(first_sync(), FIRST_SYNC_TIMEOUT_S))
        seconds = round(time.monotonic() - t0, 2)
        printer.poll()
        first = _first_sync_stats(printer.rows, cache.watermark, seconds)
        report.first_sync = first
        console.print(
            f"daemon: first sync with [bold]{first.get('strategy')}[/] in {first['seconds']:.1f} s, "
            f"{first.get('folders', 0):,} folders, {first.get('wire_bytes_in', 0):,} B received on the "
            "socket; now waiting for NOTIFY news"
        )
        # The watermark from before the run: every catch-up below starts from this copy.
        snapshot = workdir / "cache-before-changes.sqlite"
        snapshot_cache(dsettings.cache.path, snapshot)
        # 2. Another device changes things for --duration seconds; the app shows what arrives.
        await _quiet_settle(viewer, stop, quiet_s=SETTLE_QUIET_S, max_s=SETTLE_MAX_S)
        viewer.quiet = False
        printer.show = True
        console.rule(f"[bold]another device changes the account for {opts.duration_s:g} s")
        gen = ChangeGenerator(names, ChangeSettings(changes_per_s=opts.changes_per_s), seed=opts.seed + 1)
        await _until(stop, _generate(dsettings, gen, opts.duration_s))
        report.changes = {
            "appended": gen.counts.appended,
            "marked_read": gen.counts.marked_read,
            "expunged": gen.counts.expunged,
            "expunged_newest": gen.counts.expunged_newest,
            "folders": len(gen.counts.folders),
        }
        await _quiet_settle(viewer, stop, quiet_s=SETTLE_QUIET_S, max_s=SETTLE_MAX_S, outbox=cache)
        printer.poll()
        printer.show = False
        viewer.quiet = True
        console.rule("[bold]measuring one catch-up sync per discovery strategy")
        # 3. One catch-up per strategy from the same pre-run cache, against the live msgstore.
        results: list[tuple[CatchupMeasurement, EnergyEstimate]] = []
        for strategy in STRATEGIES:
            console.print(f"catch-up with {strategy.label} …")
            m = await _until(stop, measure_catchup(dsettings, snapshot, strategy, workdir))
            results.append((m, energy_per_day(m, opts.radio, opts.poll_interval_s)))
        report.catchup = [{**m.as_dict(), **asdict(e)} for m, e in results]
        for row in report.catchup:
            row["predicted_discovery_imap_bytes"] = predict_discovery_bytes(
                store, DEMO_USER, int(first["watermark"]), DiscoveryStrategy(row["strategy"])
            )
        report.events_received = viewer.events
        report.events_after_first_sync = viewer.events_live
        report.event_kinds = dict(viewer.kinds_live)
        report.syncs = printer.rows
    finally:
        printer_task.cancel()
        daemon_stop.set()  # run_daemon finishes the current folder, publishes offline, LOGOUT
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_DAEMON_TIMEOUT_S):
                await asyncio.shield(daemon_task)
        daemon_task.cancel()
        cache.close()


def _first_sync_stats(rows: list[dict[str, Any]], watermark: int, seconds: float) -> dict[str, Any]:
    """The daemon's first catch-up as its cache recorded it (the first finished sync run)."""
    first = rows[0] if rows else {}
    return {
        "strategy": first.get("strategy"), "folders": first.get("folders", 0), "watermark": watermark,
        "imap_bytes_in": first.get("imap_bytes_in", 0), "imap_bytes_out": first.get("imap_bytes_out", 0),
        "wire_bytes_in": first.get("wire_bytes_in", 0), "wire_bytes_out": first.get("wire_bytes_out", 0),
        "seconds": seconds,
    }  # fmt: skip


async def _quiet_settle(
    viewer: EventViewer, stop: asyncio.Event, *, quiet_s: float, max_s: float, outbox: Any = None
) -> None:
    """Wait until no event arrived for `quiet_s` (and the outbox is empty), at most `max_s`."""
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline and not stop.is_set():
        quiet = time.monotonic() - viewer.last_event_t >= quiet_s
        if quiet and (outbox is None or outbox.outbox_count() == 0):
            return
        await asyncio.sleep(0.1)
    if stop.is_set():
        raise _Stopped


async def _generate(dsettings: Any, gen: ChangeGenerator, seconds: float) -> None:
    from cpmsync.daemon.service import connect

    async with connect(dsettings, conn_id="demo-other-device") as imap:
        await imap.login(dsettings.imap.username, dsettings.imap.secret() or "")
        await gen.run(imap, seconds)
        await imap.logout()
