"""A change that lands while the daemon has that very folder open reaches the app, with no poll.

The fault proxy (here because no real server holds a reply on demand) holds the server's answer to
the daemon's EXAMINE of the folder; another client appends to the folder meanwhile; then the answer
is released. The daemon's view of the folder was taken before that APPEND, so only the news of the
selected mailbox (NOTIFY `selected`) can tell it: the test requires the event, against msgstore and
Dovecot, with the NOTIFY safety poll off (the default).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import append_uid, daemon_settings, other_client, running_daemon

from tests.support import FaultProxy, MosquittoBroker
from tests.support.peers import ImapPeer

FOLDER = "tel:+15145550100"


def _seed(p: ImapPeer) -> None:
    c = other_client(p.host, p.port, p.user, p.password)
    try:
        c.create_folder(FOLDER)
        c.create_folder("Default")
    finally:
        c.logout()
    append_uid(p, FOLDER, "first")


def _added(col: Collector, uid: int) -> bool:
    return any(
        e["kind"] == "message_added" and e["folder"] == FOLDER and uid in e["uids"] for e in col.events()
    )


async def test_append_while_the_folder_is_open_is_not_lost(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    await asyncio.to_thread(_seed, imap_peer)
    px: FaultProxy = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    # No COMPRESS: the proxy must see the EXAMINE command in clear to hold its answer.
    settings = daemon_settings(
        px.host, px.port, imap_peer.user, imap_peer.password, broker.port, tmp_path, compress=False
    )
    assert settings.imap.notify_poll_interval_s == 0  # nothing but push may find the change
    col = Collector(broker.port, [f"cpm/{imap_peer.user}/#"], client_id=f"col-race-{imap_peer.user}")
    async with col.running():
        async with running_daemon(settings):
            px.hold_down_after(f"EXAMINE {FOLDER}".encode())
            second = await asyncio.to_thread(
                append_uid, imap_peer, FOLDER, "second"
            )  # the daemon opens the folder
            async with asyncio.timeout(30):
                await px.held.wait()
            third = await asyncio.to_thread(append_uid, imap_peer, FOLDER, "third")  # while it is open
            px.release_down()
            await col.wait_until(lambda _m: _added(col, second) and _added(col, third))
