"""Durability of the action queue, with real parts: the daemon PROCESS is SIGKILLed between
`accepted` and `applied` while the server is unreachable (a FaultProxy refusing connections: no
real server goes away on demand), then both come back; and an action the server keeps cutting
the link on (the FaultProxy cutting mid-APPEND) is parked without holding up the others."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from daemon_actions_helpers import b64, message, running_app, seed, server_flags, settings_for
from daemon_sync_helpers import daemon_process, running_daemon

from tests.support import MosquittoBroker
from tests.support.peers import ImapPeer


def _config(path: Path, peer: ImapPeer, host: str, port: int, mqtt_port: int, cache: Path) -> Path:
    path.write_text(
        f"""
[account]
id = "{peer.user}"
[imap]
host = "{host}"
port = {port}
tls = "none"
username = "{peer.user}"
debounce_ms = 20
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
[cache]
path = "{cache}"
[actions]
window_ms = 50
"""
    )
    return path


async def test_sigkill_between_accepted_and_applied_then_each_applied_exactly_once(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    seed(imap_peer, {"chat": 2})
    px = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    config = _config(
        tmp_path / "daemon.toml", imap_peer, px.host, px.port, broker.port, tmp_path / "c.sqlite"
    )
    px.refuse(True)  # the message store is unreachable from the start
    appends = [f"a{i}" for i in range(5)]
    async with running_app(broker.port, imap_peer.user) as app:
        proc = daemon_process(config, imap_peer.password)
        try:
            # The daemon subscribes once its MQTT connection is up; the app retries until accepted.
            async with asyncio.timeout(30):
                while not app.results("probe"):
                    await app.publish({"id": "probe", "action": "mark_read", "folder": "chat"})
                    await asyncio.sleep(0.2)
            for aid in appends:
                raw = message(aid, body=f"appended {aid}")
                await app.publish({"id": aid, "action": "append", "folder": "chat", "message": b64(raw)})
            await app.publish(
                {"id": "fl", "action": "set_flags", "folder": "chat", "uids": [1], "add": ["$Done"]}
            )
            for aid in [*appends, "fl"]:
                await app.wait_result(aid, "accepted", final=False)
            assert not any(s == "applied" for aid in appends for s in app.states(aid))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        px.refuse(False)
        proc = daemon_process(config, imap_peer.password)
        try:
            done = [await app.wait_result(aid) for aid in ["probe", *appends, "fl"]]
            assert [r["state"] for r in done] == ["applied"] * 7, done
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(proc.wait, 30)
        assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    flags = await asyncio.to_thread(server_flags, imap_peer, "chat")
    assert len(flags) == 2 + len(appends), "each append stored exactly once"
    assert "$Done" in flags[1]
    assert all(len([r for r in app.results(aid) if r["state"] == "applied"]) >= 1 for aid in appends)


async def test_a_poison_action_is_parked_and_never_blocks_the_others(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    """Each try of a big APPEND loses the link halfway (FaultProxy cut); after max_tries it is parked
    with its reason, and the action queued behind it is applied."""
    seed(imap_peer, {"chat": 1})
    px = await fault_proxy_factory(imap_peer.host, imap_peer.port)
    settings = settings_for(
        imap_peer, broker.port, tmp_path, via=(px.host, px.port), max_tries=3, window_ms=0
    )
    settings = settings.model_copy(update={"imap": settings.imap.model_copy(update={"compress": False})})
    big = message("big", body="z" * 200_000)
    async with running_daemon(settings) as (session, _cache), running_app(broker.port, imap_peer.user) as app:
        async with asyncio.timeout(30):
            await session.publisher.inbox.ready.wait()
        px.cut_after(up=20_000)
        await app.publish({"id": "poison", "action": "append", "folder": "chat", "message": b64(big)})
        await app.publish({"id": "next", "action": "mark_read", "folder": "chat"})
        for _ in range(2):  # the first cut is armed; two more tries, each cut again
            async with asyncio.timeout(30):
                await px.cut_done.wait()
            px.cut_after(up=20_000)
        poison = await app.wait_result("poison")
        assert poison["state"] == "failed" and poison["reason"] == "parked", poison
        assert poison["tries"] == 3
        nxt = await app.wait_result("next")
        assert nxt["state"] == "applied", nxt
        finals = [(r["id"], r["state"]) for r in app.results() if r["state"] != "accepted"]
        assert finals.index(("next", "applied")) < finals.index(("poison", "failed")), "it did not wait"
        assert len(await asyncio.to_thread(server_flags, imap_peer, "chat")) == 1
