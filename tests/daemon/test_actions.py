"""Apps act over MQTT: each action against msgstore and Dovecot, its results, its optimistic
summary, exactly once. Real peers: the daemon, a private Mosquitto, the IMAP server, and
imapclient as the app's other device."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_actions_helpers import (
    running_app,
    seed,
    server_unseen,
    settings_for,
)
from daemon_sync_helpers import running_daemon

from cpmsync.testing import MosquittoBroker
from tests.support.peers import ImapPeer


async def _ready(session: Any) -> None:
    async with asyncio.timeout(30):
        await session.publisher.inbox.ready.wait()


async def test_mark_read_moves_the_summary_then_the_server(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    seed(imap_peer, {"tel:+15145550001": 3, "tel:+15145550002": 2})
    settings = settings_for(imap_peer, broker.port, tmp_path)
    async with running_daemon(settings) as (session, _cache), running_app(broker.port, imap_peer.user) as app:
        await _ready(session)
        await app.wait_summary("tel:+15145550001", lambda s: s["unseen"] == 3)
        await app.publish({"id": "r1", "action": "mark_read", "folder": "tel:+15145550001"})
        accepted = await app.wait_result("r1", "accepted", final=False)
        assert accepted["uids"] and len(accepted["uids"]) == 3
        await app.wait_summary("tel:+15145550001", lambda s: s["unseen"] == 0)
        applied = await app.wait_result("r1")
        assert applied["state"] == "applied", applied
        assert await asyncio.to_thread(server_unseen, imap_peer, "tel:+15145550001") == 0
        assert await asyncio.to_thread(server_unseen, imap_peer, "tel:+15145550002") == 2
        # the summary stays at 0 after the daemon synced the server's answer
        assert app.summary("tel:+15145550001")["unseen"] == 0  # type: ignore[index]
