"""The push loop gives the publisher its turn before each IDLE (Publisher.caught_up), so a change's
event leaves before the daemon settles back into waiting. That turn must never wait for the broker:
a stalled broker (SIGSTOP: its socket open, no PUBACK) must not stall the IMAP side, and what was
committed meanwhile reaches the apps once the broker is back. On each peer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

from daemon_mqtt_helpers import BROKER_CONF, Collector
from daemon_sync_helpers import append_uid, daemon_settings, other_client, running_daemon, wait_until

from tests.support import MosquittoBroker
from tests.support.peers import ImapPeer


async def test_a_stalled_broker_does_not_stall_the_push_loop_and_loses_nothing(
    imap_peer: ImapPeer, mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    p = imap_peer
    broker = mqtt_broker_factory(extra_conf=BROKER_CONF)
    c = other_client(p.host, p.port, p.user, p.password)
    for name in ("live", "b", "c"):
        c.create_folder(name)
    c.logout()
    settings = daemon_settings(p.host, p.port, p.user, p.password, broker.port, tmp_path)
    # A window of one: the stalled broker's first unacknowledged event fills it, so the next
    # commit finds the window full (the turn must end there, not wait for the PUBACK); the ack
    # timeout is beyond the stall.
    mqtt = settings.mqtt.model_copy(update={"max_inflight": 1, "ack_timeout_s": 120.0})
    settings = settings.model_copy(update={"mqtt": mqtt})
    col = Collector(broker.port, [f"cpm/{p.user}/folders/+/events"], client_id=f"col-handoff-{p.name}")

    def added(folder: str, uid: int) -> bool:
        return any(
            e["kind"] == "message_added" and e["folder"] == folder and uid in e["uids"] for e in col.events()
        )

    async with col.running(), running_daemon(settings) as (session, cache):

        def cached(folder: str, uid: int) -> bool:
            return uid in {m.uid for m in cache.messages(folder)}

        assert session.engine is not None and session.engine.imap.has("IDLE")
        uid = await asyncio.to_thread(append_uid, p, "live", "while the broker answers")
        await col.wait_until(lambda _m: added("live", uid))
        broker.pause()
        try:
            stalled: dict[str, int] = {}
            for folder in ("b", "c"):  # each synced only after the push loop went back to IDLE
                stalled[folder] = await asyncio.to_thread(append_uid, p, folder, "while stalled")
                await wait_until(functools.partial(cached, folder, stalled[folder]))
            assert not any(added(f, u) for f, u in stalled.items())  # the broker really was stalled
        finally:
            broker.resume()
        await col.wait_until(lambda _m: all(added(f, u) for f, u in stalled.items()))
