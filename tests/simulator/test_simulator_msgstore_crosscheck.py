"""Predicted catch-up bytes against what the DAEMON measures on the socket talking to msgstore.

Issue 5 asks that the simulator's bytes for a catch-up sync match, within 5 %, the bytes the
real client moves against the real server for the same account shape. Here our msgstore runs
in-process on a free port with a seeded CPM account (conversation folders with `tel:` and UUID
names, a few messages each); a few folders then receive a message after the daemon's watermark
was taken, and the daemon's own `ImapClient` + `discovery.discover` run one catch-up discovery
per strategy (LIST-CHANGEDSINCE, LIST-STATUS, LIST + STATUS per folder), with COMPRESS=DEFLATE
off and on, through a `FaultProxy` that counts the bytes each way as a second, independent meter.

Comparison scope (identical on both sides, delimited exactly): the discovery exchange only —
from the first byte of the discovery's first command to the last byte of its last tagged reply,
on a connection that already logged in, enabled QRESYNC and (when on) started COMPRESS. The
connection setup is left out on purpose: the daemon logs in with AUTHENTICATE PLAIN + SASL-IR
and re-reads CAPABILITY, which the simulator's LOGIN model does not claim to reproduce byte for
byte, and discovery is the step the strategies differ in. Plain TCP, no TLS (`WireConfig(tls="none")`):
without COMPRESS the socket bytes are the IMAP bytes (`imap_*`); with it, the deflated stream
(`stream_*`). The prediction is built from the folder names and STATUS values read from the
store, and models the daemon's requests: its STATUS items (no UIDVALIDITY under CHANGEDSINCE),
its STATUS commands pipelined (the model's one flight; the daemon refills a
window of status_window, one deflate flush per refill), msgstore's completion wording, and, with COMPRESS, the
deflate history (the ENABLE exchange) the discovery is compressed after.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

import cpmsync.imap as imap
from cpmsync.daemon.cache import Cache
from cpmsync.daemon.discovery import (
    LIST_CHANGEDSINCE,
    LIST_STATUS,
    LIST_STATUS_PER_FOLDER,
    Discovery,
    _status_items,  # the items discovery asks for: the prediction must ask for the same
    discover,
)
from cpmsync.daemon.imap_client import ByteCounters, ImapClient
from cpmsync.msgstore import MessageStore
from cpmsync.msgstore.seed import seed_account
from cpmsync.simulator.account import Folder
from cpmsync.simulator.catchup import ImapSession, predict_catchup_bytes
from cpmsync.simulator.wire import WireConfig, WireCount
from cpmsync.testing import FaultProxy
from tests.msgstore.server_testlib import make_settings, make_store, message, running_server

FOLDERS = 1000
MESSAGES_PER_FOLDER = 2
CHANGED = 3
USER, PASSWORD = "alice", "alice-pw"
TOLERANCE = 0.05
# daemon strategy name -> simulator strategy name
SIM_STRATEGY = {
    LIST_CHANGEDSINCE: "list-changedsince",
    LIST_STATUS: "list-status",
    LIST_STATUS_PER_FOLDER: "list-status-each",
}


@dataclass(frozen=True)
class Measured:
    """What the daemon's client counted, and what the proxy in front of the server counted."""

    daemon: ByteCounters
    proxy_up: int
    proxy_down: int


@dataclass(frozen=True)
class Account:
    """The account shape as the store holds it: names in LIST order, STATUS values, changes."""

    names: list[str]
    statuses: dict[str, dict[str, int]]
    changed: list[str]
    watermark: int


def _seed(store: MessageStore) -> tuple[list[str], int, list[str]]:
    """Bulk-load the account, take the watermark, then append to CHANGED folders."""
    names = seed_account(store, USER, FOLDERS, MESSAGES_PER_FOLDER, seed=5).folders
    watermark = store.user_highest_modseq(USER)
    changed = [names[7 + i * (FOLDERS - 10) // CHANGED] for i in range(CHANGED)]  # spread out
    for i, n in enumerate(changed):
        store.append(USER, n, message(i))
    return names, watermark, changed


def _read_shape(store: MessageStore, names: list[str], watermark: int, changed: list[str]) -> Account:
    listed = store.list_mailboxes(USER, "", ["*"], with_status=True)
    statuses: dict[str, dict[str, int]] = {}
    for m in listed:
        assert m.status is not None
        s = m.status
        statuses[m.name] = {
            "MESSAGES": s.messages,
            "UIDNEXT": s.uidnext,
            "UIDVALIDITY": s.uidvalidity,
            "UNSEEN": s.unseen,
            "HIGHESTMODSEQ": s.highestmodseq,
        }
    order = [m.name for m in listed]  # the server's LIST order (INBOX first, then by name)
    assert set(names) <= set(order)
    return Account(order, statuses, changed, watermark)


@dataclass(frozen=True)
class Run:
    """One measured discovery and its prediction."""

    strategy: str
    compress: bool
    measured: Measured
    predicted: WireCount
    found: frozenset[str]

    @property
    def measured_socket(self) -> tuple[int, int]:
        return self.measured.daemon.wire_out, self.measured.daemon.wire_in

    @property
    def predicted_socket(self) -> tuple[int, int]:
        p = self.predicted
        return (p.stream_up, p.stream_down) if self.compress else (p.imap_up, p.imap_down)


async def _measure(
    host: str, port: int, cache: Cache, strategy: str, compress: bool
) -> tuple[Measured, Discovery, tuple[str, ...]]:
    """One logged-in connection through a counting proxy; only the discovery is metered."""
    async with FaultProxy(host, port) as px:
        async with ImapClient(px.host, px.port, tls="none") as imap:
            await imap.login(USER, PASSWORD)
            if compress:
                assert await imap.compress()
            await imap.enable("QRESYNC")
            before = imap.counters.snapshot()
            px.reset_counters()
            d = await discover(imap, cache, strategy)
            got = imap.counters.since(before)
            up, down = px.bytes_up, px.bytes_down
            # the STATUS items this discovery asked for (the daemon drops UIDVALIDITY under CHANGEDSINCE)
            items = _status_items(imap, uidvalidity=strategy != LIST_CHANGEDSINCE)
            await imap.logout()
    return Measured(got, up, down), d, items


def _predict(acct: Account, strategy: str, compress: bool, items: tuple[str, ...]) -> WireCount:
    """The simulator's bytes for the metered discovery, on a connection in the daemon's state.

    With COMPRESS the deflate history matters (the daemon's discovery is compressed with a
    dictionary that already holds the ENABLE exchange), so the session replays what crossed
    the deflate stream before the discovery (ENABLE QRESYNC, built by the codec) and only the
    discovery's share is returned; `predict_catchup_bytes(connect=False)` starts a fresh
    compressor, which on a 3-folder answer is worth ~12 % of the compressed bytes.
    """
    order = {n: i for i, n in enumerate(acct.names)}
    changed = sorted(acct.changed, key=order.__getitem__)  # CHANGEDSINCE answers in LIST order
    sim = SIM_STRATEGY[strategy]
    wire = WireConfig(tls="none")
    if not compress:
        return predict_catchup_bytes(
            acct.names,
            acct.statuses,
            changed,
            sim,  # type: ignore[arg-type]
            compress,
            last_modseq=acct.watermark,
            wire=wire,
            connect=False,
            status_items=items,
            pipelined=True,  # the daemon pipelines its STATUS commands (status_window in flight)
            server_style="msgstore",
        )
    folders = {n: Folder(n, **{k.lower(): v for k, v in acct.statuses[n].items()}) for n in acct.names}
    sess = ImapSession(wire, server_style="msgstore")
    sess.counter.start_compression()
    t = sess.tag()
    sess.up(imap.EnableCommand(tag=t, capabilities=("QRESYNC",)))
    sess.down(
        imap.EnabledData(capabilities=("QRESYNC",)),
        sess.ok(t, "Enabled."),
    )
    before = dataclasses.replace(sess.counter.count, flights=[])
    sess.discover(sim, folders, changed, acct.watermark, status_items=items, pipelined=True)  # type: ignore[arg-type]
    after = sess.finish()
    return WireCount(**{k: v - getattr(before, k) for k, v in after.as_dict().items()})


def _report(runs: list[Run]) -> str:
    lines = [f"{'strategy':24} {'deflate':7} {'measured up/down':>18} {'predicted up/down':>18}"]
    for r in runs:
        mu, md = r.measured_socket
        pu, pd = r.predicted_socket
        lines.append(f"{r.strategy:24} {r.compress!s:7} {mu:>8} /{md:>8} {pu:>8} /{pd:>8}")
    return "\n".join(lines)


async def test_predicted_discovery_bytes_match_daemon_on_msgstore_within_5_percent(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    names, watermark, changed = await asyncio.to_thread(_seed, store)
    acct = await asyncio.to_thread(_read_shape, store, names, watermark, changed)
    cache = Cache.open(tmp_path / "cache.sqlite", "crosscheck")
    cache.begin_discovery(watermark, [])  # a synced device: its watermark is the pre-change modseq
    assert cache.watermark == watermark
    runs: list[Run] = []
    try:
        async with running_server(make_settings(), store) as srv:
            for strategy in (LIST_CHANGEDSINCE, LIST_STATUS, LIST_STATUS_PER_FOLDER):
                for compress in (False, True):
                    m, d, items = await _measure(srv.host, srv.port, cache, strategy, compress)
                    p = _predict(acct, strategy, compress, items)
                    runs.append(Run(strategy, compress, m, p, frozenset(d.changed)))
    finally:
        cache.close()
        store.close()
    print(_report(runs))
    for r in runs:
        what = f"{r.strategy} deflate={r.compress}\n{_report(runs)}"
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
    # the catch-up is real: CHANGEDSINCE names exactly the appended folders
    by = {(r.strategy, r.compress): r for r in runs}
    assert by[(LIST_CHANGEDSINCE, False)].found == set(acct.changed)
    # the headline: on this account LIST-CHANGEDSINCE moves a tiny fraction of LIST-STATUS's bytes
    for compress in (False, True):
        cs = sum(by[(LIST_CHANGEDSINCE, compress)].measured_socket)
        ls = sum(by[(LIST_STATUS, compress)].measured_socket)
        each = sum(by[(LIST_STATUS_PER_FOLDER, compress)].measured_socket)
        assert cs * 50 < ls < each, _report(runs)
