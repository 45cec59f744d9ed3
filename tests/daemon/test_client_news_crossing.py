"""NOTIFY news that crosses a LIST on the wire is news, never that LIST's answer (msgstore and Dovecot).

The soak lost changes for good after a restart: the server sent `* STATUS A` (NOTIFY) while the
daemon, busy with the previous answer, had not read it yet; the daemon then sent `LIST "" *`, its
reader routed the STATUS to that pending LIST, and the LIST took it as its own and dropped it (a
rename's `* LIST () "/" new ("OLDNAME" (old)))` the same way, so `new` looked like a new folder).
The fault proxy (no real server can be made to hold a command on demand) holds the LIST on its way
up; another client changes a folder; the real server's NOTIFY news reaches our client while the LIST
is pending; then the LIST goes on. The news must come out of the push queue.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeGuard

import pytest
from daemon_sync_helpers import other_client

from cpmsync.daemon.imap_client import ImapClient
from cpmsync.daemon.push import NOTIFY_SET, hints_from
from cpmsync.imap import ListData, StatusData, parse_response
from tests.support import FaultProxy
from tests.support.peers import ImapPeer

STATUS_A = (b'STATUS "A" ', b"STATUS A ")  # msgstore quotes every name, Dovecot only where needed
DOVECOT_NOTIFY_SETTLE_S = 2.0
BODY = b"From: <tel:+15145550100>\r\nSubject: hi\r\n\r\nhi\r\n"


def _other(p: ImapPeer) -> Any:
    return other_client(p.host, p.port, p.user, p.password)


def _plain_list(r: object) -> TypeGuard[ListData]:
    return isinstance(r, ListData) and r.oldname is None and not r.nonexistent


async def _crossing(
    imap: ImapClient, px: FaultProxy, change: Any, news: tuple[bytes, ...], **list_args: Any
) -> tuple[list[ListData], dict[str, StatusData]]:
    """Run `list_folders(**list_args)` with the server's news of `change` (bytes that contain one
    of `news`) reaching the client while the LIST is pending; then require every news line that
    reached it so to be in the push queue (whatever a peer chose to send for the change)."""
    imap.push.drain()
    seen = bytearray()
    px.tap = lambda _t, _conn, direction, data: seen.extend(data) if direction == "down" else None
    px.hold_up_at(b"LIST ")
    listing = asyncio.create_task(imap.list_folders("*", **list_args))
    async with asyncio.timeout(10):
        await px.held_up.wait()
    assert imap.in_flight == 1  # the LIST left the client and waits in the proxy
    await asyncio.to_thread(change)
    async with asyncio.timeout(10):  # the news reached the client, which has read it all
        while not any(n in seen for n in news) or imap.counters.wire_in < px.bytes_down:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    px.tap = None
    crossed = [parse_response(line + b"\r\n") for line in bytes(seen).split(b"\r\n") if line]
    px.release_up()
    got = await listing
    queued = [ev.response for ev in imap.push.drain()]
    listed = {x.name for x in got[0]}
    # A plain `* LIST () "/" X` (a folder created) may stand in the listing itself: X is listed.
    lost = [r for r in crossed if r not in queued and not (_plain_list(r) and r.name in listed)]
    assert lost == []
    for r in queued:
        imap.push.put_back(r, None)
    return got


async def test_news_crossing_a_list_stays_news(imap_peer: ImapPeer, fault_proxy_factory: Any) -> None:
    c = _other(imap_peer)
    for name in ("A", "B", "C"):
        c.create_folder(name)
    px: FaultProxy = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(imap_peer.user, imap_peer.password)
        await imap.notify_set(NOTIFY_SET)

        # A names-only LIST (the restart's names check): a STATUS in its answer is never its own.
        lists, statuses = await _crossing(imap, px, lambda: c.append("A", BODY), STATUS_A)
        assert {"A", "B", "C"} <= {x.name for x in lists} and statuses == {}
        assert "A" in hints_from(imap.push.drain()).folders  # the APPEND is not lost

        # LIST-STATUS (discovery on Dovecot): the news comes before A's LIST line; A's own STATUS,
        # after its LIST line, is the answer.
        lists, statuses = await _crossing(
            imap, px, lambda: c.append("A", BODY), STATUS_A, return_status=("MESSAGES", "UIDNEXT")
        )
        assert statuses["A"].messages == 2 and statuses["A"].uidnext == 3
        assert "A" in hints_from(imap.push.drain()).folders

        if imap.has("LIST-CHANGEDSINCE"):
            # The catch-up's LIST-CHANGEDSINCE (msgstore): news for a folder it does not list
            # (changed after the server's snapshot, or read before the LIST's own lines) is news.
            await imap.enable("QRESYNC")
            lists, statuses = await imap.list_changed_since(0)
            top = max(s.highestmodseq or 0 for s in statuses.values())
            lists, statuses = await _crossing(
                imap,
                px,
                lambda: c.append("A", BODY),
                STATUS_A,
                changedsince=top,
                return_status=("MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"),
            )
            assert statuses["A"].messages == 3  # its own STATUS, after its LIST line
            assert "A" in hints_from(imap.push.drain()).folders
    c.logout()


@pytest.mark.parametrize("change", ["rename", "delete"])
async def test_a_rename_or_deletion_crossing_a_names_list_is_not_a_listed_folder(
    imap_peer: ImapPeer, fault_proxy_factory: Any, change: str
) -> None:
    """The restart's names check: `B2 ("OLDNAME" (B))` taken as listed made B2 a new folder (its
    messages announced again under new ids); `C \\NonExistent` is no folder either."""
    c = _other(imap_peer)
    for name in ("B", "C"):
        c.create_folder(name)
    px: FaultProxy = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(imap_peer.user, imap_peer.password)
        await imap.notify_set(NOTIFY_SET)
        if imap_peer.name == "dovecot":
            # Dovecot 2.3.19 goes silent for the whole session when a folder changes within about
            # 1.5 s of NOTIFY SET (bench/peer_notify_silence.py --after-set, docs/peers.md).
            await asyncio.sleep(DOVECOT_NOTIFY_SETTLE_S)
        if change == "rename":
            lists, _ = await _crossing(imap, px, lambda: c.rename_folder("B", "B2"), (b"OLDNAME",))
            assert all(x.oldname is None for x in lists)
            assert hints_from(imap.push.drain()).renamed == [("B", "B2")]
        else:
            lists, _ = await _crossing(imap, px, lambda: c.delete_folder("C"), (b"NonExistent",))
            assert "C" not in {x.name for x in lists}
            assert hints_from(imap.push.drain()).deleted == {"C"}
    c.logout()
