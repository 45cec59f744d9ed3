"""Predicted catch-up bytes against what the DAEMON measures on the socket talking to msgstore.

Issue 5 asks that the simulator's bytes for a catch-up sync match, within 5 %, the bytes the
real client moves against the real server for the same account shape. Here our msgstore runs
in-process on a free port with a seeded CPM account (conversation folders with `tel:` and UUID
names, a few messages each). The daemon's own `SyncEngine` runs a first sync (the device is then
up to date); another device then appends a message to a few folders and marks one message read
in another. From a copy of that synced cache, the daemon's `SyncEngine.catch_up()` runs once per
strategy (LIST-CHANGEDSINCE, LIST-STATUS, LIST + STATUS per folder), with COMPRESS=DEFLATE off
and on, through a `FaultProxy` that counts the bytes each way as a second, independent meter.

Comparison scope (identical on both sides, delimited exactly): the WHOLE catch-up the daemon
performs — discovery, then for each changed folder EXAMINE (QRESYNC (uidvalidity modseq
known-uids)), the UID FETCH of the new messages' headers and text preview, and the final
UNSELECT — from the first byte of its first command to the last byte of the UNSELECT's reply.
The connection setup (greeting, AUTHENTICATE PLAIN, then ENABLE QRESYNC and COMPRESS in one
write, done by the daemon's own `service.setup`) is subtracted on both sides: the meters are read
after it, and the prediction leaves it out (`predict_catchup_bytes(connect=False)`: the deflate
stream starts at the catch-up, as the daemon's does since ENABLE goes before COMPRESS). Login is
left out because the simulator's LOGIN model does not claim to reproduce SASL byte for byte; it is
the same for every strategy. Plain TCP, no TLS (`WireConfig(tls="none")`): without COMPRESS the
socket bytes are the IMAP bytes (`imap_*`); with it, the deflated stream (`stream_*`).

The prediction is built from what the store holds: folder names and STATUS values (after the
changes), each folder's MODSEQ before them (the device's known MODSEQ), the raw messages that
arrived (their ENVELOPE and preview come from those bytes) and the UID marked read. It models
the daemon's requests: its STATUS items (no UIDVALIDITY under CHANGEDSINCE), its pipelined STATUS
commands (one flight in the model; the daemon refills a window of status_window), its FETCH items
and preview size (`[imap] preview_bytes`), and msgstore's completion wording and SELECT answer.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.discovery import (
    _status_items,  # the items discovery asks for: the prediction must ask for the same
)
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.imap_client import ByteCounters, ImapClient
from cpmsync.daemon.service import setup
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync_engine import SyncEngine
from cpmsync.msgstore import MessageStore
from cpmsync.msgstore.records import FlagMode, UidSet
from cpmsync.msgstore.seed import seed_account
from cpmsync.simulator.account import make_message
from cpmsync.simulator.catchup import PREVIEW_BYTES, predict_catchup_bytes
from cpmsync.simulator.wire import WireConfig, WireCount
from tests.msgstore.server_testlib import make_settings, make_store, message, running_server
from tests.support import FaultProxy

FOLDERS = 400  # the first sync is one EXAMINE + FETCH per folder: ~15 ms each
MESSAGES_PER_FOLDER = 2
CHANGED = 3  # folders that receive a new message
USER, PASSWORD = "alice", "alice-pw"
TOLERANCE = 0.05
LIST_CHANGEDSINCE = DiscoveryStrategy.LIST_CHANGEDSINCE
LIST_STATUS = DiscoveryStrategy.LIST_STATUS
LIST_STATUS_PER_FOLDER = DiscoveryStrategy.LIST_STATUS_PER_FOLDER


@dataclass(frozen=True)
class Measured:
    """What the daemon's client counted, and what the proxy in front of the server counted."""

    daemon: ByteCounters
    proxy_up: int
    proxy_down: int


@dataclass(frozen=True)
class Account:
    """The account shape as the store holds it after the changes, and what changed."""

    names: list[str]  # the server's LIST order
    statuses: dict[str, dict[str, int]]
    known_modseqs: dict[str, int]  # each folder's HIGHESTMODSEQ before the changes
    new: dict[str, list[bytes]]  # folder -> raw messages that arrived
    read: dict[str, list[int]]  # folder -> UIDs another device marked \Seen
    watermark: int

    @property
    def changed(self) -> list[str]:
        """The changed folders in LIST order (CHANGEDSINCE and the daemon answer in that order)."""
        touched = set(self.new) | set(self.read)
        return [n for n in self.names if n in touched]


def _statuses(store: MessageStore) -> tuple[list[str], dict[str, dict[str, int]]]:
    listed = store.list_mailboxes(USER, "", ["*"], with_status=True)
    out: dict[str, dict[str, int]] = {}
    for m in listed:
        assert m.status is not None
        s = m.status
        out[m.name] = {
            "MESSAGES": s.messages,
            "UIDNEXT": s.uidnext,
            "UIDVALIDITY": s.uidvalidity,
            "UNSEEN": s.unseen,
            "HIGHESTMODSEQ": s.highestmodseq,
        }
    return [m.name for m in listed], out


def _change(store: MessageStore, names: list[str]) -> Account:
    """Another device's changes after the sync: new messages in CHANGED folders, one read."""
    _, before = _statuses(store)
    watermark = store.user_highest_modseq(USER)
    new: dict[str, list[bytes]] = {}
    rng = random.Random(7)
    for i in range(CHANGED):
        name = names[7 + i * (FOLDERS - 10) // CHANGED]  # spread out
        # CPM pager messages (CPIM body longer than the preview), a plain one, two in one folder
        raws = [make_message(rng, name, "tel:+15145550100", 100 + i)]
        if i == 0:
            raws.append(make_message(rng, name, "tel:+15145550100", 200))
        if i == CHANGED - 1:
            raws = [message(i)]
        for raw in raws:
            store.append(USER, name, raw)
        new[name] = raws
    # another device reads an unread message: a flag change the EXAMINE answer carries
    read: dict[str, list[int]] = {}
    for name in names[FOLDERS // 2 :]:
        if before[name]["UNSEEN"] and name not in new:
            res = store.store_flags(USER, name, UidSet.from_ranges([(1, 1 << 31)]), FlagMode.ADD, ["\\Seen"])
            read[name] = res.changed_uids
            break
    assert read, "the seeded account has no unread message"
    order, after = _statuses(store)
    known = {n: s["HIGHESTMODSEQ"] for n, s in before.items()}
    return Account(order, after, known, new, read, watermark)


@dataclass(frozen=True)
class Run:
    """One measured catch-up and its prediction."""

    strategy: DiscoveryStrategy
    compress: bool
    measured: Measured
    predicted: WireCount
    synced: int

    @property
    def measured_socket(self) -> tuple[int, int]:
        return self.measured.daemon.wire_out, self.measured.daemon.wire_in

    @property
    def predicted_socket(self) -> tuple[int, int]:
        p = self.predicted
        return (p.stream_up, p.stream_down) if self.compress else (p.imap_up, p.imap_down)


def _settings(host: str, port: int, compress: bool) -> DaemonSettings:
    return DaemonSettings.model_validate(
        {
            "imap": {
                "host": host,
                "port": port,
                "tls": "none",
                "username": USER,
                "password": PASSWORD,
                "compress": compress,
            }
        }
    )


async def _first_sync(host: str, port: int, path: Path) -> None:
    """The device's first sync (every folder, every message): afterwards it is up to date."""
    ds = _settings(host, port, False)
    cache = Cache.open(path, "crosscheck")
    try:
        async with ImapClient(host, port, tls="none") as client:
            await setup(client, ds)
            await SyncEngine(client, cache, ds).catch_up()
            await client.logout()
    finally:
        cache.close()


async def _measure(
    host: str, port: int, synced: Path, work: Path, strategy: DiscoveryStrategy, compress: bool
) -> tuple[Measured, int, tuple[str, ...]]:
    """One daemon connection through a counting proxy; only `SyncEngine.catch_up()` is metered."""
    shutil.copy(synced, work)
    cache = Cache.open(work, "crosscheck")
    try:
        async with FaultProxy(host, port) as px:
            ds = _settings(px.host, px.port, compress)
            async with ImapClient(px.host, px.port, tls="none") as client:
                await setup(client, ds)
                assert client.compressed == compress
                before = client.counters.snapshot()
                px.reset_counters()
                engine = SyncEngine(client, cache, ds, forced_strategy=strategy)
                result = await engine.catch_up()
                assert engine.last_strategy == strategy
                got = client.counters.since(before)
                up, down = px.bytes_up, px.bytes_down
                # the STATUS items this discovery asked for (no UIDVALIDITY under CHANGEDSINCE)
                items = _status_items(client, uidvalidity=strategy != LIST_CHANGEDSINCE)
                await client.logout()
        assert got == result.bytes
    finally:
        cache.close()
    return Measured(got, up, down), result.folders, items


def _predict(acct: Account, strategy: DiscoveryStrategy, compress: bool, items: tuple[str, ...]) -> WireCount:
    """The simulator's bytes for the metered catch-up, on a connection in the daemon's state."""
    return predict_catchup_bytes(
        acct.names,
        acct.statuses,
        acct.changed,
        strategy,
        compress,
        last_modseq=acct.watermark,
        wire=WireConfig(tls="none"),
        connect=False,
        fetch_changed=True,
        new_messages=acct.new,
        flag_changes=acct.read,
        known_modseqs=acct.known_modseqs,
        status_items=items,
        pipelined=True,  # the daemon pipelines its STATUS commands (status_window in flight)
        server_style="msgstore",
    )


def _report(runs: list[Run]) -> str:
    head = f"{'strategy':24} {'deflate':7} {'measured up/down':>18} {'predicted up/down':>18}"
    lines = [f"{head}  {'error up/down':>15}"]
    for r in runs:
        mu, md = r.measured_socket
        pu, pd = r.predicted_socket
        eu, ed = (pu - mu) / mu * 100, (pd - md) / md * 100
        lines.append(
            f"{r.strategy:24} {r.compress!s:7} {mu:>8} /{md:>8} {pu:>8} /{pd:>8}  {eu:+5.1f}%/{ed:+5.1f}%"
        )
    return "\n".join(lines)


async def test_predicted_catchup_bytes_match_daemon_on_msgstore_within_5_percent(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    names = (await asyncio.to_thread(seed_account, store, USER, FOLDERS, MESSAGES_PER_FOLDER, seed=5)).folders
    synced = tmp_path / "synced.sqlite"
    runs: list[Run] = []
    try:
        async with running_server(make_settings(), store) as srv:
            await _first_sync(srv.host, srv.port, synced)
            acct = await asyncio.to_thread(_change, store, names)
            for strategy in (LIST_CHANGEDSINCE, LIST_STATUS, LIST_STATUS_PER_FOLDER):
                for compress in (False, True):
                    work = tmp_path / f"{strategy}-{compress}.sqlite"
                    m, synced_n, items = await _measure(srv.host, srv.port, synced, work, strategy, compress)
                    runs.append(
                        Run(strategy, compress, m, _predict(acct, strategy, compress, items), synced_n)
                    )
    finally:
        store.close()
    print(_report(runs))
    for r in runs:
        what = f"{r.strategy} deflate={r.compress}\n{_report(runs)}"
        # the catch-up is real: every strategy synced exactly the changed folders
        assert r.synced == len(acct.changed), what
        # the daemon's socket counters and the proxy agree byte for byte (two independent meters)
        assert (r.measured.proxy_up, r.measured.proxy_down) == r.measured_socket, what
        # without COMPRESS the socket carries exactly the IMAP bytes
        if not r.compress:
            assert r.measured_socket == (r.measured.daemon.imap_out, r.measured.daemon.imap_in), what
        mu, md = r.measured_socket
        pu, pd = r.predicted_socket
        assert pu == pytest.approx(mu, rel=TOLERANCE), what
        assert pd == pytest.approx(md, rel=TOLERANCE), what
        # the IMAP layer (before deflate) too: same commands, same responses
        assert r.predicted.imap_up == pytest.approx(r.measured.daemon.imap_out, rel=TOLERANCE), what
        assert r.predicted.imap_down == pytest.approx(r.measured.daemon.imap_in, rel=TOLERANCE), what
    # the headline: on this account LIST-CHANGEDSINCE's whole catch-up is a small fraction of LIST-STATUS's
    # the previews are cut: some new message's text is longer than what the daemon fetches
    assert any(
        len(raw.partition(b"\r\n\r\n")[2]) > PREVIEW_BYTES for raws in acct.new.values() for raw in raws
    )
    by = {(r.strategy, r.compress): r for r in runs}
    for compress in (False, True):
        cs = sum(by[(LIST_CHANGEDSINCE, compress)].measured_socket)
        ls = sum(by[(LIST_STATUS, compress)].measured_socket)
        each = sum(by[(LIST_STATUS_PER_FOLDER, compress)].measured_socket)
        assert cs * 5 < ls < each, _report(runs)
