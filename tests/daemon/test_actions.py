"""Apps act over MQTT: each action against msgstore and Dovecot, its results, its optimistic
summary, exactly once. Real peers: the daemon, a private Mosquitto, the IMAP server, and
imapclient as the app's other device."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_actions_helpers import (
    b64,
    device,
    message,
    running_app,
    seed,
    server_flags,
    server_folders,
    server_unseen,
    settings_for,
)
from daemon_sync_helpers import running_daemon

from tests.support import MosquittoBroker
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


async def test_every_action_against_the_server(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """set_flags (keyword), delete_messages (only those), move_messages, append, create, rename and
    delete a folder: each applied on the server, each result says what the server returned."""
    seed(imap_peer, {"chat-a": 4, "chat-b": 1})
    with device(imap_peer) as c:  # another device's \Deleted message must survive our expunge
        c.select_folder("chat-a")
        c.add_flags([4], [b"\\Deleted"])
        c.unselect_folder()
    settings = settings_for(imap_peer, broker.port, tmp_path)
    async with running_daemon(settings) as (session, cache), running_app(broker.port, imap_peer.user) as app:
        await _ready(session)
        await app.publish(
            {"id": "f1", "action": "set_flags", "folder": "chat-a", "uids": [1], "add": ["$Pinned"]}
        )
        await app.publish({"id": "d1", "action": "delete_messages", "folder": "chat-a", "uids": [2]})
        await app.publish(
            {"id": "m1", "action": "move_messages", "folder": "chat-a", "uids": [3], "to": "chat-b"}
        )
        raw = message("appended", body="by the app")
        await app.publish(
            {"id": "a1", "action": "append", "folder": "chat-b", "message": b64(raw), "flags": ["\\Seen"]}
        )
        await app.publish({"id": "c1", "action": "create_folder", "folder": "chat-c"})
        await app.publish({"id": "n1", "action": "rename_folder", "folder": "chat-c", "to": "chat-d"})
        await app.publish({"id": "x1", "action": "create_folder", "folder": "chat-x"})
        await app.publish({"id": "x2", "action": "delete_folder", "folder": "chat-x"})
        results = {
            aid: await app.wait_result(aid) for aid in ("f1", "d1", "m1", "a1", "c1", "n1", "x1", "x2")
        }
        assert {aid: r["state"] for aid, r in results.items()} == dict.fromkeys(results, "applied"), results
        flags_a = await asyncio.to_thread(server_flags, imap_peer, "chat-a")
        assert set(flags_a) == {1, 4}, "only uid 2 expunged, and uid 3 moved away"
        assert "$Pinned" in flags_a[1] and "\\Deleted" in flags_a[4]
        flags_b = await asyncio.to_thread(server_flags, imap_peer, "chat-b")
        assert len(flags_b) == 3
        assert results["a1"]["new_uids"] and results["a1"]["new_uids"][0] in flags_b
        assert "\\Seen" in flags_b[results["a1"]["new_uids"][0]]
        assert results["m1"]["new_uids"] and results["m1"]["new_uids"][0] in flags_b
        names = await asyncio.to_thread(server_folders, imap_peer)
        assert "chat-d" in names and "chat-c" not in names and "chat-x" not in names
        # and the cache (so the retained summaries) followed
        await app.wait_summary("chat-b", lambda s: s["messages"] == 3)
        assert "chat-d" in cache.folders() and "chat-x" not in cache.folders()


async def test_a_repeated_id_gets_the_recorded_result_and_is_not_applied_twice(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    seed(imap_peer, {"chat": 1})
    settings = settings_for(imap_peer, broker.port, tmp_path)
    action = {"id": "once", "action": "append", "folder": "chat", "message": b64(message("one"))}
    async with running_daemon(settings) as (session, _cache), running_app(broker.port, imap_peer.user) as app:
        await _ready(session)
        await app.publish(action)
        first = await app.wait_result("once")
        await app.publish(action)
        await app.publish({**action, "folder": "elsewhere"})  # same id, other content: still the first
        await app.col.wait_until(lambda _ms: len(app.results("once")) >= 4)
        repeats = app.results("once")[-2:]
        assert [r["state"] for r in repeats] == ["applied", "applied"]
        assert all(r["new_uids"] == first["new_uids"] for r in repeats)
        assert len(await asyncio.to_thread(server_flags, imap_peer, "chat")) == 2


async def test_results_also_go_to_the_mqtt5_response_topic(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    seed(imap_peer, {"chat": 2})
    settings = settings_for(imap_peer, broker.port, tmp_path)
    async with running_daemon(settings) as (session, _cache), running_app(broker.port, imap_peer.user) as app:
        await _ready(session)
        reply_to = f"app/{imap_peer.user}/replies"
        await app.publish(
            {"id": "rt", "action": "mark_read", "folder": "chat"},
            response_topic=reply_to,
            correlation=b"\x01corr",
        )
        await app.publish(b"{not json", response_topic=reply_to, correlation=b"\x02bad")

        def states() -> list[tuple[Any, Any, bytes | None]]:
            replies = [m for m in app.col.messages if m.topic == reply_to]
            return [(m.json["id"], m.json["state"], m.correlation) for m in replies]

        await app.col.wait_until(lambda _ms: ("rt", "applied", b"\x01corr") in states())
        await app.col.wait_until(lambda _ms: (None, "failed", b"\x02bad") in states())
        assert states().count(("rt", "accepted", b"\x01corr")) == 1


BAD_INPUT = [
    (b"{nope", None, "invalid_json"),
    (b"[1, 2]", None, "invalid_json"),
    (b'{"id": "b1", "action": "archive_everything", "folder": "chat"}', "b1", "unknown_action"),
    (b'{"id": "b2", "action": "mark_read"}', "b2", "missing_field"),
    (b'{"action": "mark_read", "folder": "chat"}', None, "missing_field"),
    (b'{"id": "b3", "action": "set_flags", "folder": "chat", "uids": ["x"]}', "b3", "invalid_field"),
    (b'{"id": "' + b"i" * 65 + b'", "action": "mark_read", "folder": "chat"}', None, "invalid_field"),
    (b'{"id": "b4", "action": "mark_read", "folder": "chat\\r\\nA1 DELETE INBOX"}', "b4", "bad_folder_name"),
    (b'{"id": "b5", "action": "create_folder", "folder": "\\ud800x"}', "b5", "bad_folder_name"),
    (b'{"id": "b6", "action": "append", "folder": "chat", "message": "not base64!"}', "b6", "invalid_field"),
]


async def test_bad_input_fails_with_a_reason_and_the_queue_goes_on(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    seed(imap_peer, {"chat": 2})
    settings = settings_for(imap_peer, broker.port, tmp_path, max_message_bytes=1000)
    async with running_daemon(settings) as (session, _cache), running_app(broker.port, imap_peer.user) as app:
        await _ready(session)
        for payload, _aid, _reason in BAD_INPUT:
            await app.publish(payload)
        big = {
            "id": "b7",
            "action": "append",
            "folder": "chat",
            "message": b64(message("x", body="y" * 2000)),
        }
        await app.publish(big)
        odd = 'Zoë "q" ☕ ~&'  # not bad: UTF-8 (mUTF-7 on the wire), quotes and & are fine
        await app.publish({"id": "odd", "action": "create_folder", "folder": odd})
        await app.publish({"id": "after", "action": "mark_read", "folder": "chat"})
        assert (await app.wait_result("after"))["state"] == "applied"
        odd_result = await app.wait_result("odd")
        assert odd_result["state"] == "applied", (odd_result["reason"], odd_result["text"])
        assert odd in await asyncio.to_thread(server_folders, imap_peer)
        failed = [r for r in app.results() if r["state"] == "failed"]
        got = [(r["id"], r["reason"]) for r in failed]
        assert got == [(aid, reason) for _p, aid, reason in BAD_INPUT] + [("b7", "too_large")]
        assert all(r["text"] for r in failed)
        assert not any(r["state"] == "accepted" for r in app.results() if r["id"] not in ("after", "odd"))
        assert await asyncio.to_thread(server_unseen, imap_peer, "chat") == 0
        assert await asyncio.to_thread(server_folders, imap_peer) >= {"chat"}
