"""A change that lands while the daemon has that very folder open reaches the app, with no poll.

The fault proxy (here because no real server holds a reply on demand) holds the server's answer to
the daemon's EXAMINE of the folder; another client appends to the folder meanwhile; then the answer
is released. The daemon's view of the folder was taken before that APPEND, so only the news of the
selected mailbox (NOTIFY `selected`) can tell it: the test requires the event, against msgstore and
Dovecot, with the NOTIFY safety poll off (the default).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import daemon_settings, other_client, running_daemon

from cpmsync.testing import FaultProxy, MosquittoBroker
from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings

FOLDER = "tel:+15145550100"


@dataclass
class Peer:
    host: str
    port: int
    user: str
    password: str


@pytest.fixture(params=["msgstore", "dovecot"])
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[Peer]:
    if request.param == "dovecot":
        acct = request.getfixturevalue("dovecot_account")
        yield Peer(acct.host, acct.port, acct.user, acct.password)
        return
    with ThreadServer(make_settings()) as srv:
        yield Peer("127.0.0.1", srv.port, "alice", USERS["alice"])


def _append(p: Peer, folder: str, subject: str) -> int:
    c = other_client(p.host, p.port, p.user, p.password)
    try:
        body = f"From: <tel:+15145550100>\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
        res = c.append(folder, body)
        return int(res.split(b"APPENDUID")[1].split()[1].rstrip(b"]"))
    finally:
        c.logout()


def _seed(p: Peer) -> None:
    c = other_client(p.host, p.port, p.user, p.password)
    try:
        c.create_folder(FOLDER)
        c.create_folder("Default")
    finally:
        c.logout()
    _append(p, FOLDER, "first")


def _added(col: Collector, uid: int) -> bool:
    return any(
        e["kind"] == "message_added" and e["folder"] == FOLDER and uid in e["uids"] for e in col.events()
    )


async def test_append_while_the_folder_is_open_is_not_lost(
    peer: Peer, broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    await asyncio.to_thread(_seed, peer)
    px: FaultProxy = await fault_proxy_factory(peer.host, peer.port)
    # No COMPRESS: the proxy must see the EXAMINE command in clear to hold its answer.
    settings = daemon_settings(
        px.host, px.port, peer.user, peer.password, broker.port, tmp_path, compress=False
    )
    assert settings.imap.notify_poll_interval_s == 0  # nothing but push may find the change
    col = Collector(broker.port, [f"cpm/{peer.user}/#"], client_id=f"col-race-{peer.user}")
    async with asyncio.TaskGroup() as tg:
        ct = tg.create_task(col.run())
        await col.subscribed.wait()
        async with running_daemon(settings):
            px.hold_down_after(f"EXAMINE {FOLDER}".encode())
            second = await asyncio.to_thread(_append, peer, FOLDER, "second")  # the daemon opens the folder
            async with asyncio.timeout(30):
                await px.held.wait()
            third = await asyncio.to_thread(_append, peer, FOLDER, "third")  # while it is open
            px.release_down()
            await col.wait_until(lambda _m: _added(col, second) and _added(col, third))
        ct.cancel()
