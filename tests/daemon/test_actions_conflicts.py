"""The conflict rules of README "Act on the account", each against msgstore and Dovecot: actions
accepted while the server is unreachable (a FaultProxy refusing connections: no real server goes
away on demand), another device changes the same folders meanwhile, then the link comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_actions_helpers import device, running_app, seed, server_flags, server_folders, settings_for
from daemon_sync_helpers import running_daemon

from tests.support import MosquittoBroker
from tests.support.peers import ImapPeer


async def _offline(px: Any, session: Any) -> None:
    """Cut the daemon off the server and wait until it knows (status disconnected)."""
    px.refuse(True)
    errors = session.errors
    await px.cut()
    async with asyncio.timeout(30):
        while session.errors == errors:  # noqa: ASYNC110 - the session has no event for this
            await asyncio.sleep(0.02)


async def test_conflicts_with_another_device_while_offline(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    seed(imap_peer, {"chat-m": 3, "chat-x": 3, "chat-r": 2, "chat-gone": 2})
    px = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    settings = settings_for(imap_peer, broker.port, tmp_path, via=(px.host, px.port))
    async with running_daemon(settings) as (session, cache), running_app(broker.port, imap_peer.user) as app:
        async with asyncio.timeout(30):
            await session.publisher.inbox.ready.wait()
        await _offline(px, session)
        # Accepted offline: the summaries move at once.
        await app.publish({"id": "m", "action": "mark_read", "folder": "chat-m", "uids": [1, 2]})
        await app.publish({"id": "x", "action": "mark_read", "folder": "chat-x", "uids": [1, 2, 3]})
        await app.publish({"id": "r", "action": "mark_read", "folder": "chat-r"})
        await app.publish({"id": "g", "action": "mark_read", "folder": "chat-gone"})
        await app.wait_summary("chat-m", lambda s: s["unseen"] == 1)
        await app.wait_summary("chat-gone", lambda s: s["unseen"] == 0)
        # Meanwhile another device: flags uid 1 of chat-m, expunges uid 2 of chat-x, renames
        # chat-r, deletes chat-gone.
        with device(imap_peer) as c:
            c.select_folder("chat-m")
            c.add_flags([1], [b"\\Flagged"])
            c.select_folder("chat-x")
            c.delete_messages([2])
            c.uid_expunge([2])
            c.unselect_folder()
            c.rename_folder("chat-r", "chat-r2")
            c.delete_folder("chat-gone")
        px.refuse(False)
        m, x, r, g = [await app.wait_result(aid) for aid in "mxrg"]
        # [MODIFIED]: re-read, stored again on top of the other device's change
        assert m["state"] == "applied" and m["modified"] == [1], m
        assert (await asyncio.to_thread(server_flags, imap_peer, "chat-m"))[1] >= {"\\Flagged", "\\Seen"}
        # expunged meanwhile: dropped from the action, noted in the result
        assert x["state"] == "applied" and x["dropped"] == [2], x
        assert set(await asyncio.to_thread(server_flags, imap_peer, "chat-x")) == {1, 3}
        # renamed meanwhile: followed
        assert r["state"] == "applied" and r["folder"] == "chat-r2" and "chat-r" in (r["text"] or ""), r
        assert all(
            "\\Seen" in f for f in (await asyncio.to_thread(server_flags, imap_peer, "chat-r2")).values()
        )
        # deleted meanwhile: failed with its reason, and the optimistic change is gone with it
        assert g["state"] == "failed" and g["reason"] == "folder_not_found", g
        assert "chat-gone" not in await asyncio.to_thread(server_folders, imap_peer)
        await app.wait_summary("chat-r2", lambda s: s["unseen"] == 0)
        async with asyncio.timeout(30):
            while "chat-gone" in cache.folders():  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def test_a_refusal_rolls_the_optimistic_change_back(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Moving to a folder that does not exist: the server refuses ([TRYCREATE]); the messages the
    summary had dropped at accept come back, and the result says why."""
    seed(imap_peer, {"chat": 3})
    settings = settings_for(imap_peer, broker.port, tmp_path)
    async with running_daemon(settings) as (session, cache), running_app(broker.port, imap_peer.user) as app:
        async with asyncio.timeout(30):
            await session.publisher.inbox.ready.wait()
        await app.wait_summary("chat", lambda s: s["messages"] == 3)
        await app.publish(
            {"id": "mv", "action": "move_messages", "folder": "chat", "uids": [1, 2], "to": "nowhere"}
        )
        await app.wait_summary("chat", lambda s: s["messages"] == 1)  # optimistic
        res = await app.wait_result("mv")
        assert res["state"] == "failed" and res["reason"] == "folder_not_found", res
        await app.wait_summary("chat", lambda s: s["messages"] == 3)  # rolled back
        assert sorted(m.uid for m in cache.messages("chat")) == [1, 2, 3]
        assert set(await asyncio.to_thread(server_flags, imap_peer, "chat")) == {1, 2, 3}
