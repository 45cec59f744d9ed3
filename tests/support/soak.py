"""The differential soak: a real daemon process, a private Mosquitto, a real peer, a change stream.

Another client makes seeded random changes (APPEND, flag changes, EXPUNGE, MOVE, CREATE, RENAME,
DELETE, DELETE + CREATE of the same name) at a steady rate over hundreds of folders, while a fault
hits the daemon (SIGKILL + restart), the broker (restart) or the IMAP connection (cut by the fault
proxy, which sits in front of the real peer for that reason). When the stream stops, the daemon
must converge, within a bound, to exactly the server's state: in its cache, in the retained folder
summaries an app reads, and in the events an app that saw every event would have applied.

Used by tests/daemon/test_soak.py (short) and bench/bench_soak.py (long, with figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.topics import decode_folder
from cpmsync.testing import FaultProxy, MosquittoBroker, seed_imap
from tests.support.peers import ImapPeer

__all__ = ["FAULTS", "SoakResult", "run_soak"]

FAULTS = ("none", "sigkill", "broker", "cut")
State = dict[str, dict[int, frozenset[str]]]


@dataclass
class SoakResult:
    seed: int
    changes: int
    convergence_s: float | None
    mismatches: list[str] = field(default_factory=list)
    restarts: int = 0
    cuts: int = 0

    def __str__(self) -> str:
        lines = [
            f"seed {self.seed}: {self.changes} changes, converged in "
            + (f"{self.convergence_s:.2f} s" if self.convergence_s is not None else "NEVER"),
            *self.mismatches[:40],
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------- the other client's changes


def _clean(flags: Any) -> frozenset[str]:
    out = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
    return frozenset(f for f in out if f.upper() != "\\RECENT")


def _client(peer: ImapPeer) -> IMAPClient:
    c = IMAPClient(peer.host, peer.port, ssl=False, use_uid=True, timeout=30)
    c.login(peer.user, peer.password)
    return c


def _message(rng: random.Random, n: int) -> bytes:
    peer = f"tel:+1514{rng.randint(1000000, 9999999)}"
    return (
        f"From: <{peer}>\r\nTo: <tel:+15145550100>\r\nSubject: soak {n}\r\n"
        f"Message-ID: <soak{n}.{rng.random()}@example.org>\r\n\r\nmessage {n}\r\n"
    ).encode()


class ChangeStream:
    """Seeded random changes by another client, `rate` per second until `stop` is set."""

    def __init__(self, peer: ImapPeer, folders: list[str], seed: int, rate: float) -> None:
        self.peer, self.rng, self.rate = peer, random.Random(seed), rate
        self.folders = list(folders)
        self.made = 0
        self.kinds: dict[str, int] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._boxes = 0

    def run(self) -> None:
        c = _client(self.peer)
        try:
            t0 = time.monotonic()
            while not self.stop.is_set():
                due = t0 + self.made / self.rate
                if (wait := due - time.monotonic()) > 0:
                    self.stop.wait(wait)
                    continue
                self._one(c)
        except BaseException as e:  # reported by the test, never swallowed
            self.error = e
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    def _count(self, kind: str) -> None:
        self.made += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def _new_box(self) -> str:
        self._boxes += 1
        return f"soak-{self.rng.randrange(10**6)}-{self._boxes}"

    def _one(self, c: IMAPClient) -> None:
        rng = self.rng
        op = rng.choices(
            [
                "append",
                "flag",
                "unflag",
                "keyword",
                "expunge",
                "move",
                "create",
                "rename",
                "delete",
                "recreate",
            ],
            weights=[30, 15, 8, 5, 10, 6, 5, 4, 3, 2],
        )[0]
        folder = rng.choice(self.folders)
        if op == "append":
            c.append(folder, _message(rng, self.made), flags=rng.choice([(), (b"\\Seen",)]))
        elif op == "create":
            name = self._new_box()
            c.create_folder(name)
            c.append(name, _message(rng, self.made))
            self.folders.append(name)
        elif op in ("rename", "delete", "recreate"):
            boxes = [f for f in self.folders if f.startswith("soak-")]
            if not boxes:
                return
            victim = rng.choice(boxes)
            self.folders.remove(victim)
            if op == "rename":
                new = self._new_box()
                c.rename_folder(victim, new)
                self.folders.append(new)
            else:
                c.delete_folder(victim)
                if op == "recreate":  # DELETE + CREATE of the same name: a new UIDVALIDITY
                    c.create_folder(victim)
                    c.append(victim, _message(rng, self.made))
                    self.folders.append(victim)
        else:
            c.select_folder(folder)
            uids = c.search("ALL")
            if uids:
                uid = rng.choice(uids)
                if op == "flag":
                    c.add_flags([uid], [b"\\Seen"])
                elif op == "unflag":
                    c.remove_flags([uid], [b"\\Seen"])
                elif op == "keyword":
                    c.add_flags([uid], [rng.choice([b"$Label1", b"\\Flagged"])])
                elif op == "expunge":
                    c.add_flags([uid], [b"\\Deleted"])
                    c.uid_expunge([uid])
                else:
                    to = rng.choice([f for f in self.folders if f != folder] or [folder])
                    c.move([uid], to)
            c.unselect_folder()
        self._count(op)


def server_state(peer: ImapPeer) -> tuple[State, dict[str, tuple[int, int]]]:
    """Every folder's UIDs and flags, and its STATUS (MESSAGES, UNSEEN), as another client sees it."""
    c = _client(peer)
    try:
        state: State = {}
        status: dict[str, tuple[int, int]] = {}
        for flags, _d, name in c.list_folders():
            if any(f.upper() in (b"\\NOSELECT", b"\\NONEXISTENT") for f in flags):
                continue
            st = c.folder_status(name, [b"MESSAGES", b"UNSEEN"])
            status[name] = (int(st[b"MESSAGES"]), int(st[b"UNSEEN"]))
            info = c.select_folder(name, readonly=True)
            msgs: dict[int, frozenset[str]] = {}
            if info.get(b"EXISTS", 0):
                for uid, data in c.fetch(c.search("ALL"), ["FLAGS"]).items():
                    msgs[uid] = _clean(data[b"FLAGS"])
            state[name] = msgs
            c.unselect_folder()
        return state, status
    finally:
        with contextlib.suppress(Exception):
            c.logout()


# ---------------------------------------------------------------- what the device shows


async def retained_summaries(port: int, account: str, quiet_s: float = 0.7) -> dict[str, dict[str, Any]]:
    """What an app subscribing now reads: every retained folder summary (empty ones dropped)."""
    import json

    out: dict[str, dict[str, Any]] = {}
    prefix = f"cpm/{account}/folders/"
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"reader-{time.monotonic_ns()}") as c:
        await c.subscribe(f"{prefix}+", qos=1)
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet_s):
                    m = await anext(aiter(c.messages))
                name = decode_folder(str(m.topic)[len(prefix) :])
                payload = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
                if payload:
                    out[name] = json.loads(payload)
                else:
                    out.pop(name, None)
    return out


class EventLog:
    """Every event on the events topics, from a persistent QoS 1 session opened before the stream."""

    def __init__(self, port: int, account: str) -> None:
        self.port, self.account = port, account
        self.events: list[dict[str, Any]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        import json

        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=f"soak-events-{self.account}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=props,
                ) as c:
                    await c.subscribe(f"cpm/{self.account}/folders/+/events", qos=1)
                    self.ready.set()

                    def keep(m: aiomqtt.Message) -> None:
                        if isinstance(m.payload, bytes | bytearray) and m.payload:
                            self.events.append(json.loads(bytes(m.payload)))

                    try:
                        async for m in c.messages:
                            keep(m)
                    except aiomqtt.MqttError:
                        # aiomqtt acknowledges a QoS 1 message on arrival, and its iterator raises at
                        # a disconnect even with messages still queued: take those too, or the log
                        # loses what the broker delivered (seen at a broker restart).
                        while not c._queue.empty():
                            keep(c._queue.get_nowait())
                        raise
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


def replay(events: list[dict[str, Any]]) -> State:
    """The state an app holds having applied these events (duplicates dropped by id)."""
    state: State = {}
    seen: set[str] = set()
    for ev in events:
        if ev["id"] in seen:
            continue
        seen.add(ev["id"])
        kind, folder = ev["kind"], ev["folder"]
        if kind == "folder_added":
            state.setdefault(folder, {})
        elif kind == "folder_removed":
            state.pop(folder, None)
        elif kind == "folder_renamed":
            state[folder] = state.pop(ev["old_folder"], {})
        elif kind == "message_added":
            for uid in ev["uids"]:
                state.setdefault(folder, {})[uid] = frozenset(ev.get("flags") or ())
        elif kind == "flags_changed":
            for uid in ev["uids"]:
                state.setdefault(folder, {})[uid] = frozenset(ev.get("flags") or ())
        elif kind == "message_removed":
            for uid in ev["uids"]:
                state.get(folder, {}).pop(uid, None)
    return state


def _duplicate_ids(events: list[dict[str, Any]]) -> list[str]:
    """Two ids for the same message arriving (folder, UIDVALIDITY, UID): a duplicate an app can't drop."""
    by_key: dict[tuple[str, Any, int], set[str]] = {}
    for ev in events:
        if ev["kind"] == "message_added":
            for uid in ev["uids"]:
                by_key.setdefault((ev["folder"], ev.get("uidvalidity"), uid), set()).add(ev["id"])
    return [f"message {k} announced under {len(ids)} ids" for k, ids in by_key.items() if len(ids) > 1]


# ---------------------------------------------------------------- the run


def _daemon_config(path: Path, proxy: FaultProxy, peer: ImapPeer, mqtt_port: int, cache: Path) -> None:
    # Dovecot 2.3.19 drops NOTIFY events around a CREATE + RENAME (docs/peers.md): the documented
    # safety poll for such a server, shortened to the test's time scale. msgstore needs none.
    extra = "notify_poll_interval_s = 3\nnames_list_interval_s = 3\n" if peer.name == "dovecot" else ""
    path.write_text(
        f"""
[account]
id = "{peer.user}"
[imap]
host = "{proxy.host}"
port = {proxy.port}
tls = "none"
username = "{peer.user}"
debounce_ms = 50
reconnect_min_s = 0.05
reconnect_max_s = 0.5
command_timeout_s = 15
{extra}
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
reconnect_min_s = 0.05
reconnect_max_s = 0.5
[cache]
path = "{cache}"
"""
    )


class Daemon:
    """The daemon as a process, as a device runs it."""

    def __init__(self, config: Path, password: str) -> None:
        self.config, self.password = config, password
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=self.password)
        cmd = [sys.executable, "-m", "cpmsync.cli", "--log-level", "warning", "daemon", "run"]
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(self.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


async def _faults(kind: str, rng: random.Random, stop: asyncio.Event, daemon: Daemon, broker: MosquittoBroker,
                  proxy: FaultProxy, result: SoakResult) -> None:  # fmt: skip
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(2.0, 5.0)):
                await stop.wait()
        if stop.is_set() or kind == "none":
            continue
        if kind == "sigkill":
            await asyncio.to_thread(daemon.kill)
            daemon.start()
            result.restarts += 1
        elif kind == "broker":
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await asyncio.to_thread(broker.start)
            result.restarts += 1
        elif kind == "cut":
            await proxy.cut(rst=rng.random() < 0.5)
            result.cuts += 1


def _compare(
    server: State,
    status: dict[str, tuple[int, int]],
    cache: State,
    summaries: dict[str, dict[str, Any]],
    events: State,
) -> list[str]:
    out = []
    for name in sorted(set(server) | set(cache)):
        if server.get(name) != cache.get(name):
            out.append(f"cache {name!r}: server {_short(server.get(name))} cache {_short(cache.get(name))}")
    for name in sorted(set(status) | set(summaries)):
        s = summaries.get(name)
        got = None if s is None else (s["messages"], s["unseen"])
        if status.get(name) != got:
            out.append(
                f"summary {name!r}: server STATUS (MESSAGES, UNSEEN) {status.get(name)} retained {got}"
            )
    for name in sorted(set(server) | set(events)):
        if server.get(name) != events.get(name):
            out.append(
                f"events {name!r}: server {_short(server.get(name))} replayed {_short(events.get(name))}"
            )
    return out


def _event_trail(mismatches: list[str], events: list[dict[str, Any]]) -> list[str]:
    """For each folder an events mismatch names: the events that mention it, in arrival order."""
    out = []
    for m in mismatches:
        if not m.startswith("events "):
            continue
        name = m.split("'")[1]
        for ev in events:
            if name in (ev["folder"], ev.get("old_folder")):
                out.append(
                    f"  {ev['kind']} {ev['folder']!r} old={ev.get('old_folder')!r} uids={ev.get('uids')} "
                    f"uidvalidity={ev.get('uidvalidity')} id={ev['id'][:12]}"
                )
    return out


def _short(v: dict[int, frozenset[str]] | None) -> str:
    if v is None:
        return "(no folder)"
    return (
        "{"
        + ", ".join(f"{u}:{''.join(sorted(f))[:12]}" for u, f in sorted(v.items())[:8])
        + ("…}" if len(v) > 8 else "}")
    )


async def run_soak(
    peer: ImapPeer,
    tmp: Path,
    proxy_factory: Callable[..., Any],
    *,
    fault: str,
    seconds: float,
    rate: float = 20.0,
    folders: int = 300,
    seed: int | None = None,
    converge_s: float = 60.0,
) -> SoakResult:
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    seeded = await asyncio.to_thread(
        seed_imap, peer.host, peer.port, peer.user, peer.password, folders, 2, seed=seed
    )
    names = list(seeded.folders)
    proxy: FaultProxy = await proxy_factory(peer.host, peer.port)
    # As the README asks of a device broker whose apps must see every event (no queue limit).
    conf = "set_tcp_nodelay true\nmax_queued_messages 0"
    broker = MosquittoBroker(persistence=True, extra_conf=conf).start()
    config = tmp / "daemon.toml"
    cache_path = tmp / "cache.sqlite"
    _daemon_config(config, proxy, peer, broker.port, cache_path)
    daemon = Daemon(config, peer.password)
    log = EventLog(broker.port, peer.user)
    result = SoakResult(seed, 0, None)
    try:
        async with asyncio.TaskGroup() as tg:
            lt = tg.create_task(log.run())
            await log.ready.wait()
            daemon.start()
            stream = ChangeStream(peer, names, seed, rate)
            stop = asyncio.Event()
            ft = tg.create_task(_faults(fault, rng, stop, daemon, broker, proxy, result))
            writer = asyncio.to_thread(stream.run)
            wt = tg.create_task(writer)
            await asyncio.sleep(seconds)
            stream.stop.set()
            stop.set()
            await wt
            await ft
            if stream.error is not None:
                raise stream.error
            result.changes = stream.made
            t_last = time.monotonic()
            deadline = t_last + converge_s
            mism: list[str] = ["not compared yet"]
            while time.monotonic() < deadline:
                server, status = await asyncio.to_thread(server_state, peer)
                cache = await asyncio.to_thread(_cache_state, cache_path, peer.user)
                summaries = await retained_summaries(broker.port, peer.user)
                mism = _compare(server, status, cache, summaries, replay(log.events))
                if not mism:
                    result.convergence_s = time.monotonic() - t_last
                    break
                await asyncio.sleep(0.5)
            result.mismatches = mism + _duplicate_ids(log.events) + _event_trail(mism, log.events)
            lt.cancel()
    finally:
        await asyncio.to_thread(daemon.stop)
        broker.close()
    return result


def _cache_state(path: Path, account: str) -> State:
    cache = Cache.open(path, account, upgrade=False)
    try:
        return {n: {m.uid: frozenset(m.flags) for m in cache.messages(n)} for n in cache.folders()}
    finally:
        cache.close()
