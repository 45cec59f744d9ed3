"""The three views the soak compares: the server, the daemon's cache, and MQTT.

The server is read by another client (imaplib). The cache is the daemon's SQLite file opened
read-only (the daemon keeps running). MQTT is read twice: an observer with a persistent QoS 1
session subscribed before the daemon starts, which keeps every event and summary with its arrival
time, and at the end a fresh subscriber that reads the retained summaries as an app starting now.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import json
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cpmsync.daemon.topics import Topics
from tests.support import imap_quote
from tests.support.peers import ImapPeer
from tests.support.soak.stream import list_name

__all__ = [
    "FolderState",
    "Observer",
    "Received",
    "Snapshot",
    "cache_snapshot",
    "retained_summaries",
    "server_snapshot",
]

Flags = frozenset[str]


def _clean(flags: Any) -> Flags:
    out = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
    return frozenset(f for f in out if f.upper() != "\\RECENT")


@dataclass(frozen=True)
class FolderState:
    """One folder: its STATUS and its messages (UID -> flags)."""

    uidvalidity: int | None
    messages: int
    unseen: int
    highestmodseq: int | None
    msgs: dict[int, Flags]

    def brief(self) -> str:
        return f"v{self.uidvalidity} M={self.messages} U={self.unseen} HMS={self.highestmodseq}"


Snapshot = dict[str, FolderState]


def server_snapshot(peer: ImapPeer) -> Snapshot:
    """Every selectable folder: STATUS (MESSAGES UNSEEN UIDVALIDITY HIGHESTMODSEQ) and UID -> FLAGS,
    read by imaplib (not our client) on its own connection."""
    m = imaplib.IMAP4(peer.host, peer.port, timeout=60)
    try:
        _check(m.login(peer.user, peer.password), "LOGIN")
        names = []
        for line in _check(m.list('""', "*"), "LIST"):
            if isinstance(line, bytes) and b"\\Noselect" not in line and b"\\NonExistent" not in line:
                names.append(list_name(line))
        out: Snapshot = {}
        for name in names:
            q = imap_quote(name)
            raw = _check(m.status(q, "(MESSAGES UNSEEN UIDVALIDITY HIGHESTMODSEQ)"), f"STATUS {name!r}")[0]
            assert isinstance(raw, bytes), raw
            st = {k.decode(): int(v) for k, v in _STATUS_ITEM.findall(raw.rsplit(b"(", 1)[1])}
            exists = _check(m.select(q, readonly=True), f"EXAMINE {name!r}")[0]
            msgs: dict[int, Flags] = {}
            if exists not in (b"0", None):
                for item in _check(m.uid("FETCH", "1:*", "(FLAGS)"), f"UID FETCH in {name!r}"):
                    text = item[0] if isinstance(item, tuple) else item
                    if not isinstance(text, bytes):
                        continue
                    uid, flags = _FETCH_UID.search(text), _FETCH_FLAGS.search(text)
                    assert uid is not None and flags is not None, text
                    msgs[int(uid.group(1))] = _clean(flags.group(1).split())
            out[name] = FolderState(
                st["UIDVALIDITY"], st["MESSAGES"], st["UNSEEN"], st.get("HIGHESTMODSEQ"), msgs
            )
        return out
    finally:
        with contextlib.suppress(Exception):
            m.logout()


_STATUS_ITEM = re.compile(rb"([A-Z]+) (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def _check(result: tuple[str, Sequence[object]], what: str) -> list[object]:
    typ, data = result
    if typ != "OK":
        raise AssertionError(f"reading the server: {what}: {typ} {data!r}")
    return list(data)


def cache_snapshot(path: Path, account: str) -> Snapshot:
    """The daemon's cache, read-only, in one read transaction (the daemon may be writing)."""
    if not path.exists():
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN")
        folders = con.execute(
            "SELECT id, name, uidvalidity, messages, unseen, highestmodseq FROM folder WHERE account_id = ?",
            (account,),
        ).fetchall()
        msgs: dict[int, dict[int, Flags]] = {fid: {} for fid, *_ in folders}
        for fid, uid, flags in con.execute("SELECT folder_id, uid, flags FROM message"):
            if fid in msgs:
                msgs[fid][uid] = _clean(flags.split())
        con.execute("ROLLBACK")
    finally:
        con.close()
    return {name: FolderState(v, m, u, h, msgs[fid]) for fid, name, v, m, u, h in folders}


def _payload(m: aiomqtt.Message) -> dict[str, Any] | None:
    raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
    return json.loads(raw) if raw else None


async def retained_summaries(port: int, topics: Topics, quiet_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """What an app subscribing now reads: every retained folder summary (cleared ones absent)."""
    out: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"soak-reader-{time.monotonic_ns()}") as c:
        await c.subscribe(topics.all_summaries, qos=1)
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet_s):
                    m = await anext(aiter(c.messages))
                kind, folder = topics.parse(str(m.topic))
                if kind != "summary" or folder is None:
                    continue
                p = _payload(m)
                if p is None:
                    out.pop(folder, None)
                else:
                    out[folder] = p
    return out


@dataclass
class Received:
    """One MQTT message as the observer got it: arrival time (monotonic), what, which folder."""

    t: float
    kind: str  # "summary" | "event" | "status"
    folder: str | None
    payload: dict[str, Any] | None  # None: an empty payload (a cleared retained summary)


@dataclass
class Observer:
    """Every event and summary from before the daemon's first publish, with arrival times.

    A persistent session (MQTT 5, clean_start false, QoS 1), so what the broker queued while the
    observer was cut off by a broker restart is delivered when it is back."""

    port: int
    topics: Topics
    timeline: list[Received] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    connects: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.timeline if r.kind == "event" and r.payload is not None]

    def _keep(self, m: aiomqtt.Message) -> None:
        kind, folder = self.topics.parse(str(m.topic))
        payload = _payload(m)
        if kind == "summary" and folder is not None:
            if payload is None:
                self.summaries.pop(folder, None)
            else:
                self.summaries[folder] = payload
        elif kind == "status":
            self.status = payload
        elif kind != "events":
            return
        self.timeline.append(
            Received(time.monotonic(), "event" if kind == "events" else kind, folder, payload)
        )

    async def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = 3600
        ident = f"soak-observer-{self.topics.account}-{time.monotonic_ns()}"
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=ident,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=props,
                ) as c:
                    self.connects += 1
                    for topic in (self.topics.all_summaries, self.topics.all_events, self.topics.status):
                        await c.subscribe(topic, qos=1)
                    self.ready.set()
                    try:
                        async for m in c.messages:
                            self._keep(m)
                    except aiomqtt.MqttError:
                        # The client acknowledges a QoS 1 message when it queues it, and the
                        # iterator raises at a disconnect with messages still queued: keep those
                        # too, or the log loses what the broker delivered.
                        while not c._queue.empty():
                            self._keep(c._queue.get_nowait())
                        raise
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
