"""The pipelined multi-folder sync (daemon/sync_many.py) against msgstore and Dovecot.

It must leave exactly the cache (rows and events) that syncing one folder at a time leaves, on a
first sync and on a catch-up after appends, flag changes and expunges in many folders, while
sending its commands in far fewer writes than there are folders (no round trip per folder). News
that arrives between two pipelined folders belongs to the folder that was selected, never to the
next one: the fault proxy (no real server sends news at a chosen point) puts a flag change right
after the first folder's FETCH answer.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from daemon_sync_helpers import daemon_settings, other_client
from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.daemon.imap_client import ImapClient
from cpmsync.daemon.service import setup
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync import sync_folder
from cpmsync.daemon.sync_engine import SyncEngine
from cpmsync.imap import FetchData
from tests.support import FaultProxy, cpm_message
from tests.support.peers import ImapPeer

FOLDERS = 12
CHANGED = 8  # folders `_change` changes


def _seed(p: ImapPeer) -> list[str]:
    rng = random.Random(7)
    c = other_client(p.host, p.port, p.user, p.password)
    names = [f"tel:+1514555{i:04d}" for i in range(FOLDERS)]
    try:
        for i, name in enumerate(names):
            c.create_folder(name)
            for j in range(i % 4):  # 0 to 3 messages; CPM senders (`<tel:...>`) that Dovecot garbles
                c.append(name, cpm_message(rng, name, j), flags=("\\Seen",) if j % 2 else ())
    finally:
        c.logout()
    return names


def _change(p: ImapPeer, names: list[str]) -> None:
    rng = random.Random(8)
    c: IMAPClient = other_client(p.host, p.port, p.user, p.password)
    try:
        for i, name in enumerate(names):
            c.select_folder(name)
            uids = c.search("ALL")
            if i % 3 == 0:
                c.append(name, cpm_message(rng, name, 9))
            if i % 3 == 1 and uids:
                c.add_flags(uids[:1], ["\\Flagged"])
            if i % 4 == 2 and uids:
                c.delete_messages(uids[-1:])
                c.expunge()
            c.unselect_folder()
    finally:
        c.logout()


def _settings(host: str, port: int, p: ImapPeer, tmp: Path, name: str) -> DaemonSettings:
    s = daemon_settings(host, port, p.user, p.password, 1883, tmp, compress=False)
    s.cache.path = tmp / name
    return s


def _state(cache: Cache) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for name, f in cache.folders().items():
        msgs: list[MessageData] = cache.messages(name)
        flat = [(m.uid, sorted(m.flags), m.from_, m.to, m.subject, m.preview, m.size, m.modseq) for m in msgs]
        out[name] = (f.uidvalidity, f.uidnext, f.highestmodseq, f.messages, f.unseen, flat)
    return out


def _events(cache: Cache) -> dict[str, list[tuple[str, str]]]:
    """Per topic, the (retained?, kind/summary) sequence the outbox holds."""
    out: dict[str, list[tuple[str, str]]] = {}
    for item in cache.outbox_batch(limit=100_000):
        kind = "summary" if item.retain else json.loads(item.payload)["kind"]
        out.setdefault(item.topic, []).append((str(item.retain), kind))
    return out


async def _one_at_a_time(imap: ImapClient, cache: Cache, settings: DaemonSettings, names: list[str]) -> None:
    for name in names:
        await sync_folder(imap, cache, name, settings.imap)
    if imap.selected is not None:
        await imap.unselect()


async def test_pipelined_sync_leaves_the_cache_one_folder_at_a_time_leaves(
    imap_peer: ImapPeer, tmp_path: Path, fault_proxy_factory: object
) -> None:
    names = await asyncio.to_thread(_seed, imap_peer)
    px: FaultProxy = await fault_proxy_factory(imap_peer.host, imap_peer.port)  # type: ignore[operator]
    fast = _settings(px.host, px.port, imap_peer, tmp_path, "fast.sqlite")
    slow = _settings(imap_peer.host, imap_peer.port, imap_peer, tmp_path, "slow.sqlite")
    a, b = Cache.open(fast.cache.path, imap_peer.user), Cache.open(slow.cache.path, imap_peer.user)
    try:
        for phase in ("first sync", "catch-up"):
            if phase == "catch-up":
                await asyncio.to_thread(_change, imap_peer, names)
            async with ImapClient(px.host, px.port, tls="none") as imap:
                await setup(imap, fast)
                px.reset_counters()
                result = await SyncEngine(imap, a, fast).catch_up()
                writes = sum(1 for e in px.trace if e.direction == "up")
                closed = imap.selected is None
            async with ImapClient(imap_peer.host, imap_peer.port, tls="none") as imap:
                await setup(imap, slow)
                listed = sorted(a.folders())
                await _one_at_a_time(imap, b, slow, listed)
            assert set(names) <= set(a.folders()), phase
            assert _state(a) == _state(b), phase
            assert _events(a) == _events(b), phase
            assert a.pending_folders() == [], phase
            # Three writes however many folders: the listing, the probe of the first folders (how
            # the server shows addresses), the rest with the probe's follow-ups and the closing
            # UNSELECT; not one round trip after another, nor one for the follow-ups or UNSELECT.
            assert result.folders >= (FOLDERS if phase == "first sync" else CHANGED), phase
            assert writes <= 3 < result.folders, (phase, writes, result.folders)
            assert closed, phase
    finally:
        a.close()
        b.close()


async def test_news_between_pipelined_folders_goes_to_the_folder_that_was_selected(
    imap_peer: ImapPeer, tmp_path: Path, fault_proxy_factory: object
) -> None:
    names = (await asyncio.to_thread(_seed, imap_peer))[1:3]  # one message and two
    first, second = names
    px: FaultProxy = await fault_proxy_factory(imap_peer.host, imap_peer.port)  # type: ignore[operator]
    settings = _settings(px.host, px.port, imap_peer, tmp_path, "c.sqlite")
    cache = Cache.open(settings.cache.path, imap_peer.user)
    try:
        async with ImapClient(px.host, px.port, tls="none") as imap:
            await setup(imap, settings)
            n = imap._tagno
            # The pipeline: C{n+1} EXAMINE first, C{n+2} UID FETCH, C{n+3} UNSELECT, C{n+4} EXAMINE
            # second, C{n+5} UID FETCH. Right after the first folder's FETCH answer, a flag change
            # in it (the server may send news there): the second folder's FETCH is in flight then.
            ok = f"C{n + 2} OK".encode()
            px.replace_next_down_line(ok + b" done\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n", startswith=ok)
            await SyncEngine(imap, cache, settings).sync_folders(names)
            assert px.replaced.is_set()
            news = [e for e in imap.push.drain() if isinstance(e.response, FetchData)]
        assert [(e.selected, e.response.uid) for e in news] == [(first, 1)]
        assert all("\\Flagged" not in m.flags for m in cache.messages(second))
        assert [f.messages for f in (cache.folder(first), cache.folder(second))] == [1, 2]  # type: ignore[union-attr]
    finally:
        cache.close()
