"""One soak run: start everything, stream changes under a fault, wait for convergence, judge.

`run_soak` is the differential soak (tests/daemon/test_soak.py, bench/bench_soak.py soak);
`run_bursts` the convergence benchmark (bench/bench_soak.py bursts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from cpmsync.daemon.topics import Topics
from tests.support import FaultProxy, MosquittoBroker
from tests.support.processes import scratch_dir
from tests.support.soak.checks import (
    AppState,
    cache_problems,
    change_problems,
    convergence_time,
    created_ts,
    duplicate_problems,
    folder_report,
    mqtt_problem,
    summary_problem,
)
from tests.support.soak.procs import PASSWORD, USER, Daemon, DaemonConfig, Peer, start_broker, start_peer
from tests.support.soak.state import Observer, Snapshot, cache_snapshot, retained_summaries, server_snapshot
from tests.support.soak.stream import ChangeStream

__all__ = ["FAULTS", "BurstResult", "SoakResult", "percentile", "run_bursts", "run_soak"]

FAULTS = ("none", "sigkill", "broker", "cut")
PREFIX = "cpm"
DOVECOT_NOTIFY_POLL_S = 10.0
KEEP_ENV = "CPMSYNC_SOAK_KEEP"
"""Set to a folder: each run keeps its evidence there (`<peer>-<fault>-<seed>/`): the daemon's
debug log, the raw IMAP exchange between daemon and peer (`wire.log`, COMPRESS off so it reads)
and the peer's log."""


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-int(p * len(ordered)) // 100) - 1))]


@dataclass
class SoakResult:
    peer: str
    fault: str
    seed: int
    seconds: float
    ops: int = 0
    changes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    imap_connections: int = 0
    initial_sync_s: float | None = None
    convergence_s: float | None = None  # last change -> MQTT view equals the server
    events: int = 0
    repeats: int = 0  # events received again under the same id (allowed)
    folders_end: int = 0
    problems: list[str] = field(default_factory=list)
    trails: list[str] = field(default_factory=list)
    daemon_log: list[str] = field(default_factory=list)
    peer_log: list[str] = field(default_factory=list)  # the server's warnings, errors, crashes
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase of the run

    @property
    def ok(self) -> bool:
        return self.convergence_s is not None and not self.problems

    def headline(self) -> str:
        conv = f"{self.convergence_s:.2f} s" if self.convergence_s is not None else "NEVER (within the bound)"
        return (
            f"{self.peer}/{self.fault} seed {self.seed}: {self.changes} changes in {self.ops} operations "
            f"over {self.seconds:.0f} s, {len(self.faults)} faults, "
            f"{self.imap_connections} IMAP connections, "
            f"{self.events} events ({self.repeats} repeats by id), {self.folders_end} folders; "
            f"converged: {conv}; {len(self.problems)} mismatches"
        )

    def report(self, limit: int = 60) -> str:
        lines = [
            self.headline(),
            f"reproduce: CPMSYNC_SOAK_SEED={self.seed} (peer {self.peer}, fault {self.fault})",
        ]
        if self.kinds:
            lines.append("changes: " + ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items())))
        if self.faults:
            lines.append("faults: " + "; ".join(self.faults))
        if self.problems:
            lines.append(f"mismatches ({len(self.problems)}):")
            lines += [f"  {p}" for p in self.problems[:limit]]
            if len(self.problems) > limit:
                lines.append(f"  … {len(self.problems) - limit} more")
        if self.trails:
            lines.append("trails (changes and events of the first folders that differ, by time):")
            lines += self.trails
        if self.daemon_log and not self.ok:
            lines.append("daemon log (warnings, errors, starts):")
            lines += [f"  {ln[:300]}" for ln in self.daemon_log]
        if self.peer_log:
            lines.append(f"{self.peer} log (warnings, errors, crashes):")
            lines += [f"  {ln[:300]}" for ln in self.peer_log]
        return "\n".join(lines)


@dataclass
class Rig:
    """Everything of one run, started: the peer, the proxy in front of it, the broker, the daemon."""

    peer: Peer
    proxy: FaultProxy
    broker: MosquittoBroker
    daemon: Daemon
    observer: Observer
    topics: Topics


@asynccontextmanager
async def _rig(peer_name: str, folders: int, messages: int, seed: int, label: str) -> AsyncIterator[Rig]:
    workdir = scratch_dir("cpmsync-soak-")
    keep = os.environ.get(KEEP_ENV)
    peer = await asyncio.to_thread(start_peer, peer_name, folders, messages, seed)
    proxy: FaultProxy | None = None
    wire: TextIO | None = None
    broker: MosquittoBroker | None = None
    daemon: Daemon | None = None
    try:
        # The daemon reaches the peer through the fault proxy, so a fault can cut its connection.
        proxy = await FaultProxy(peer.daemon_imap.host, peer.daemon_imap.port).start()
        if keep:
            wire = (workdir / "wire.log").open("w")
            proxy.tap = partial(_tap, wire)
        broker = await asyncio.to_thread(start_broker)
        topics = Topics(PREFIX, USER)
        # Dovecot 2.3.19's NOTIFY goes silent for good after seconds of this stream's folder churn
        # (docs/peers.md shows it on a raw session, no daemon involved): the soak then runs the
        # daemon as docs/peers.md tells users to run it against Dovecot, with the safety poll.
        poll_s = DOVECOT_NOTIFY_POLL_S if peer_name == "dovecot" else 0.0
        config = DaemonConfig(
            USER, proxy.host, proxy.port, USER, broker.port, workdir / "cache.sqlite", poll_s,
            log_level="debug" if keep else "info", compress=not keep,
        )  # fmt: skip
        daemon = Daemon(config, PASSWORD, workdir)
        observer = Observer(broker.port, topics)
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(observer.run())
            try:
                async with asyncio.timeout(20):
                    await observer.ready.wait()
                yield Rig(peer, proxy, broker, daemon, observer, topics)
            finally:
                watching.cancel()
    finally:
        if daemon is not None:
            await asyncio.to_thread(daemon.stop)
        if broker is not None:
            await asyncio.to_thread(broker.close)
        if proxy is not None:
            await proxy.aclose()
        await asyncio.to_thread(peer.close)
        if keep:
            if wire is not None:
                wire.close()
            with contextlib.suppress(OSError):
                shutil.copy(peer.log_path, workdir / f"{peer_name}.log")
            shutil.copytree(workdir, Path(keep) / label, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _tap(out: TextIO, t: float, conn: int, direction: str, data: bytes) -> None:
    """One line per delivered chunk: time, connection, direction, the bytes as Python shows them."""
    out.write(f"{t:9.3f} c{conn} {'C:' if direction == 'up' else 'S:'} {data!r}\n")


async def _wait(pred: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll a condition (the MQTT view and the cache have no change callback to await)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)
    return True


async def _initial_sync(rig: Rig, timeout_s: float = 180.0) -> float:
    """Start the daemon and wait until its summaries equal the seeded server (the stream starts then)."""
    truth = await asyncio.to_thread(server_snapshot, rig.peer.imap)
    t0 = time.monotonic()
    rig.daemon.start()
    sums = rig.observer.summaries
    done = await _wait(
        lambda: all(summary_problem(n, f, sums.get(n)) is None for n, f in truth.items()), timeout_s
    )
    if not done:
        missing = [n for n, f in truth.items() if summary_problem(n, f, sums.get(n)) is not None]
        raise AssertionError(
            f"the daemon's first sync did not publish {len(missing)} of {len(truth)} folders within "
            f"{timeout_s:.0f} s (e.g. {missing[:5]}); daemon log:\n" + "\n".join(rig.daemon.log_problems())
        )
    return time.monotonic() - t0


def _live_equal(rig: Rig, truth: Snapshot) -> bool:
    """The observer's view (summaries as they arrived, every event replayed) equals the server."""
    app = AppState()
    for ev in rig.observer.events:
        app.apply(ev)
    sums = rig.observer.summaries
    names = set(truth) | set(sums) | set(app.folders)
    return all(mqtt_problem(n, truth.get(n), sums.get(n), app.folders.get(n)) is None for n in names)


async def _settle(rig: Rig, truth: Snapshot, deadline: float) -> None:
    """Wait (bounded) until the MQTT view, a fresh subscriber's retained summaries and the cache
    all equal the server; returns at the deadline otherwise (the caller reports what differs)."""
    cache_path = rig.daemon.config.cache_path
    while time.monotonic() < deadline:
        if _live_equal(rig, truth):
            cache = await asyncio.to_thread(cache_snapshot, cache_path, USER)
            if not cache_problems(truth, cache):
                retained = await retained_summaries(rig.broker.port, rig.topics)
                if all(
                    summary_problem(n, truth.get(n), retained.get(n)) is None
                    for n in set(truth) | set(retained)
                ):
                    return
        await asyncio.sleep(0.25)


async def _judge(rig: Rig, stream: ChangeStream, truth: Snapshot, t_last: float, result: SoakResult) -> None:
    """Compare every view with the server and fill the result's figures, mismatches and trails."""
    retained = await retained_summaries(rig.broker.port, rig.topics)
    cache = await asyncio.to_thread(cache_snapshot, rig.daemon.config.cache_path, USER)
    events = rig.observer.events
    app = AppState()
    for ev in events:
        app.apply(ev)
    report = folder_report(truth, retained, app, cache)
    changes = change_problems(stream.changes, events, truth)
    dups, repeats = duplicate_problems(events)
    result.problems = list(report.values()) + changes + dups
    result.convergence_s = convergence_time(rig.observer.timeline, truth, t_last)
    if result.convergence_s is None and not result.problems:
        # Equal now, but the observer's own view never was: an event or summary it saw differs
        # from what a fresh subscriber and the replay show (should not happen; reported, not hidden).
        result.problems.append("the observer's MQTT view never equalled the server (see convergence)")
    result.events, result.repeats = len(events), repeats
    result.folders_end = len(truth)
    result.changes = len(stream.changes)
    result.ops = stream.ops
    kinds: dict[str, int] = {}
    for c in stream.changes:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    result.kinds = kinds
    result.imap_connections = rig.proxy.connections_total
    result.trails = _trails(list(report) + _named(changes + dups, events), stream, events, truth)
    result.daemon_log = rig.daemon.log_problems()
    result.peer_log = rig.peer.log_problems()


def _named(problems: list[str], events: list[dict[str, Any]]) -> list[str]:
    """The folder each problem line is about: the first quoted name, else the folder of the first
    UIDVALIDITY (`v123`) it names."""
    by_v = {ev.get("uidvalidity"): ev["folder"] for ev in events}
    out = []
    for p in problems:
        parts = p.split("'")
        if len(parts) > 2:
            out.append(parts[1])
        elif (m := re.search(r"\bv(\d+)", p)) and int(m.group(1)) in by_v:
            out.append(by_v[int(m.group(1))])
    return out


def _trails(
    names: list[str], stream: ChangeStream, events: list[dict[str, Any]], truth: Snapshot
) -> list[str]:
    """For the first few folders that differ: every change and event that names the folder (or its
    UIDVALIDITY), in time order, so the lead sees where the daemon lost it."""
    t0 = stream.changes[0].t if stream.changes else 0.0
    out: list[str] = []
    for name in list(dict.fromkeys(names))[:5]:
        vs = {c.uidvalidity for c in stream.changes if c.folder == name}
        vs |= {c.dest_uidvalidity for c in stream.changes if c.dest == name}
        if name in truth:
            vs.add(truth[name].uidvalidity)
        vs.discard(None)
        shown_vs = sorted(v for v in vs if v is not None)
        rows: list[tuple[float, str]] = []
        for c in stream.changes:
            if c.folder == name or c.dest == name or c.uidvalidity in vs or c.dest_uidvalidity in vs:
                rows.append((c.t, "change " + c.describe(t0)))
        for ev in events:
            if name in (ev["folder"], ev.get("old_folder")) or ev.get("uidvalidity") in vs:
                rows.append(
                    (
                        created_ts(ev),
                        f"event  +{created_ts(ev) - t0:.2f}s {ev['kind']} {ev['folder']!r}"
                        + (f" from {ev['old_folder']!r}" if ev.get("old_folder") else "")
                        + f" v{ev.get('uidvalidity')} uids {ev.get('uids')} modseq {ev.get('modseq')}"
                        + f" flags {' '.join(ev.get('flags') or []) or '()'} id {ev['id'][:10]}",
                    )
                )
        out.append(f"  -- {name!r} (uidvalidity {shown_vs}): {len(rows)} lines")
        rows.sort(key=lambda r: r[0])
        shown = [r for r in rows if r[0] >= t0 - 1] or rows  # the first sync's events only if nothing else
        out += [f"     {text}" for _, text in shown[-40:]]
    return out


async def _faults(kind: str, rng: random.Random, stop: asyncio.Event, rig: Rig, log: list[str]) -> None:
    """Hit the daemon (SIGKILL + restart), the broker (restart on the same port) or the daemon's IMAP
    connection (cut now, or once a random number of server bytes went through) every 2-5 s."""
    t0 = time.monotonic()
    while True:
        try:
            async with asyncio.timeout(rng.uniform(2.0, 5.0)):
                await stop.wait()
            return
        except TimeoutError:
            pass
        at = f"+{time.monotonic() - t0:.1f}s"
        if kind == "sigkill":
            await asyncio.to_thread(rig.daemon.kill)
            pause = rng.uniform(0.0, 1.0)
            await asyncio.sleep(pause)
            rig.daemon.start()
            log.append(f"{at} SIGKILL, restart after {pause:.1f} s")
        elif kind == "broker":
            await asyncio.to_thread(rig.broker.stop)
            pause = rng.uniform(0.5, 2.0)
            await asyncio.sleep(pause)
            await asyncio.to_thread(rig.broker.start)
            log.append(f"{at} broker down {pause:.1f} s")
        elif kind == "cut":
            rst = rng.random() < 0.5
            if rng.random() < 0.5:
                await rig.proxy.cut(rst=rst)
                log.append(f"{at} cut{' (RST)' if rst else ''}")
            else:
                down = rng.randint(50, 20_000)
                rig.proxy.cut_after(down=down, rst=rst)
                log.append(f"{at} cut after {down} more server bytes{' (RST)' if rst else ''}")


async def run_soak(
    peer: str,
    fault: str,
    *,
    seconds: float,
    seed: int | None = None,
    rate: float = 20.0,
    folders: int = 300,
    messages: int = 2,
    converge_s: float = 60.0,
) -> SoakResult:
    """The differential soak: `seconds` of changes at `rate`/s under `fault`, then the verdict."""
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}")
    seed = random.randrange(2**31) if seed is None else seed
    result = SoakResult(peer, fault, seed, seconds)
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        result.phases[name] = round(now - mark, 2)
        mark = now

    async with _rig(peer, folders, messages, seed, f"{peer}-{fault}-{seed}") as rig:
        phase("start+seed")
        result.initial_sync_s = await _initial_sync(rig)
        phase("first sync")
        stream = ChangeStream(rig.peer.imap, seed, rate)
        await asyncio.to_thread(stream.open)
        stop, stop_faults = threading.Event(), asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                hits = tg.create_task(
                    _faults(fault, random.Random(seed + 1), stop_faults, rig, result.faults)
                )
                writing = tg.create_task(asyncio.to_thread(stream.run, stop))
                await asyncio.wait([writing], timeout=seconds)
                stop.set()
                stop_faults.set()
                await writing
                await hits
        finally:
            stop.set()
            await asyncio.to_thread(stream.close)
        if stream.error is not None:
            raise stream.error
        if not rig.daemon.running:
            rig.daemon.start()
        t_last = stream.last_done_mono
        phase("stream")
        truth = await asyncio.to_thread(server_snapshot, rig.peer.imap)
        phase("server snapshot")
        await _settle(rig, truth, t_last + converge_s)
        phase("settle")
        await _judge(rig, stream, truth, t_last, result)
        phase("judge")
    phase("stop")
    return result


@dataclass
class BurstResult:
    peer: str
    seed: int
    size: int
    rate: float
    times: list[float | None] = field(default_factory=list)
    soak: SoakResult | None = None


async def run_bursts(
    peer: str,
    *,
    bursts: int,
    size: int,
    rate: float = 17.0,
    seed: int | None = None,
    folders: int = 300,
    converge_s: float = 60.0,
) -> BurstResult:
    """Bursts of `size` changes at `rate`/s; per burst, seconds from its last change until the MQTT
    view equals the server (None: not within `converge_s`). The final state is judged as a soak."""
    seed = random.randrange(2**31) if seed is None else seed
    out = BurstResult(peer, seed, size, rate)
    result = SoakResult(peer, "none", seed, 0.0)
    async with _rig(peer, folders, 2, seed, f"{peer}-bursts-{seed}") as rig:
        result.initial_sync_s = await _initial_sync(rig)
        stream = ChangeStream(rig.peer.imap, seed, rate)
        await asyncio.to_thread(stream.open)
        try:
            truth: Snapshot = {}
            t_last = 0.0
            for _ in range(bursts):
                t_burst = time.monotonic()
                await asyncio.to_thread(stream.run, threading.Event(), size)
                if stream.error is not None:
                    raise stream.error
                result.seconds += time.monotonic() - t_burst
                t_last = stream.last_done_mono
                truth = await asyncio.to_thread(server_snapshot, rig.peer.imap)
                await _wait(partial(_live_equal, rig, truth), t_last + converge_s - time.monotonic(), 0.1)
                out.times.append(convergence_time(rig.observer.timeline, truth, t_last))
                await asyncio.sleep(1.0)
        finally:
            await asyncio.to_thread(stream.close)
        await _settle(rig, truth, time.monotonic() + 5)
        await _judge(rig, stream, truth, t_last, result)
    out.soak = result
    return out
