"""The outbox publisher against a real, private Mosquitto: nothing lost, order per folder kept.

Brokers are started, paused (SIGSTOP), killed and restarted on the same port by the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from daemon_mqtt_helpers import (
    BROKER_CONF,
    Collector,
    assert_duplicates_identical,
    first_seen_order,
    mqtt_settings,
    open_cache,
    produce,
    save_sessions,
    wait_for,
)

from cpmsync.daemon.publisher import Publisher
from cpmsync.models.events import FolderEvent
from tests.support import FaultProxy, MosquittoBroker

FOLDERS = ["INBOX", "Sent", "tel:+15143457900"]


async def test_outbox_drains_in_order_and_rows_leave_only_after_the_ack(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    cache = open_cache(tmp_path / "c.sqlite", "drain")
    col = Collector(broker.port, ["cpm/drain/folders/+/events"], client_id="drain-sub")
    pub = Publisher(mqtt_settings(broker.port), "drain", cache)
    expected = {f: produce(cache, f, 1, 10) for f in FOLDERS}
    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(col.run())
        await col.subscribed.wait()
        tg.create_task(pub.run())
        await col.wait_until(
            lambda m: (
                len(first_seen_order(col.events()).get("Sent", [])) == 10
                and sum(len(v) for v in first_seen_order(col.events()).values()) == 30
            )
        )
        await wait_for(lambda: cache.outbox_count() == 0)
        assert first_seen_order(col.events()) == expected
        for e in col.events():
            FolderEvent.model_validate(e)

        # Broker frozen: the publisher sends, no PUBACK comes back, so every row stays.
        broker.pause()
        try:
            more = produce(cache, "INBOX", 11, 5)
            await asyncio.sleep(0.5)  # give the publisher time to try; it must not delete anything
            assert cache.outbox_count() == 6  # 5 events + the folder summary
        finally:
            broker.resume()
        await wait_for(lambda: cache.outbox_count() == 0)
        await col.wait_until(lambda m: first_seen_order(col.events())["INBOX"] == expected["INBOX"] + more)
        await pub.close()
        sub.cancel()


async def test_broker_down_at_start_then_started_delivers_everything(
    mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    broker = mqtt_broker_factory(persistence=True, extra_conf=BROKER_CONF)
    col = Collector(broker.port, ["cpm/late/folders/+/events"], client_id="late-sub", persistent=True)
    await col.subscribe_once()  # the app's session exists; the broker keeps it across restarts
    broker.stop()
    cache = open_cache(tmp_path / "c.sqlite", "late")
    pub = Publisher(mqtt_settings(broker.port), "late", cache)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        expected = {f: produce(cache, f, 1, 20) for f in FOLDERS}
        await asyncio.sleep(0.3)  # several failed connection attempts
        assert not pub.connected
        assert cache.outbox_count() == 3 * 21 + 3  # nothing dropped while the broker is down
        broker.start()
        sub = tg.create_task(col.run())
        await wait_for(lambda: cache.outbox_count() == 0)
        await col.wait_until(lambda m: first_seen_order(col.events()) == expected)
        await pub.close()
        sub.cancel()


async def test_broker_killed_mid_drain_and_restarted_delivers_every_unacknowledged_event(
    mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real SIGKILL of the broker while the outbox drains.

    The broker is frozen (SIGSTOP) first so the test knows which rows it had not acknowledged:
    every one of those, and everything produced afterwards, must arrive. Events the broker had
    already PUBACKed are its own responsibility (a SIGKILLed broker may lose what it held only in
    memory; MQTT gives a publisher no way to prevent that), so they are not asserted here; the
    cut-connection test below covers a cut with no broker loss at all.
    """
    broker = mqtt_broker_factory(persistence=True, extra_conf=BROKER_CONF)
    col = Collector(broker.port, ["cpm/kill/folders/+/events"], client_id="kill-sub", persistent=True)
    cache = open_cache(tmp_path / "c.sqlite", "kill")
    pub = Publisher(mqtt_settings(broker.port, max_inflight=5, ack_timeout_s=1), "kill", cache)
    expected: dict[str, list[int]] = {f: [] for f in FOLDERS}

    async def producer() -> None:
        for r in range(30):
            for f in FOLDERS:
                expected[f] += produce(cache, f, 1 + 5 * r, 5)
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(col.run())
        await col.subscribed.wait()
        save_sessions(broker)  # the app's session is on disk, as on a device whose broker persists sessions
        tg.create_task(pub.run())
        prod = tg.create_task(producer())
        await col.wait_until(lambda m: len(col.events()) >= 60)
        broker.pause()
        # Wait until the publisher gives up on the frozen broker (ack timeout): by then it has read
        # every PUBACK the broker sent before freezing, so the outbox holds exactly the unacked rows.
        with caplog.at_level(logging.WARNING, logger="cpmsync.daemon.mqtt"):
            await wait_for(lambda: not pub.connected)
        # The frozen broker keeps its socket open: only the PUBACK timeout can tell.
        assert any(getattr(r, "error", None) == "no PUBACK within 1 s" for r in caplog.records)
        unacked = {json.loads(i.payload)["id"] for i in cache.outbox_batch(100_000) if not i.retain}
        assert unacked, "the kill must happen mid-drain"
        broker.kill()
        broker.start()
        await prod
        await wait_for(lambda: cache.outbox_count() == 0)
        # everything not acknowledged at the kill, plus all that came after, arrives
        last_folder_uid = {f: expected[f][-1] for f in FOLDERS}
        await col.wait_until(
            lambda m: all(last_folder_uid[f] in first_seen_order(col.events()).get(f, []) for f in FOLDERS)
        )
        await col.wait_until(lambda m: unacked <= {e["id"] for e in col.events()})
        got = first_seen_order(col.events())
        for f in FOLDERS:
            # per-folder order holds for what arrived: first sightings are increasing
            assert got[f] == sorted(got[f])
        assert_duplicates_identical(col.events())
        await pub.close()
        sub.cancel()


async def test_connection_cut_mid_drain_loses_nothing_and_duplicates_share_ids(
    broker: MosquittoBroker,
    tmp_path: Path,
    fault_proxy_factory: Callable[..., Awaitable[FaultProxy]],
) -> None:
    """Cut the publisher's connection (a relay in front of the real broker) again and again while
    the outbox drains: PUBACKs in flight are lost, rows are resent, nothing is missing."""
    col = Collector(broker.port, ["cpm/cut/folders/+/events"], client_id="cut-sub")
    cache = open_cache(tmp_path / "c.sqlite", "cut")
    expected: dict[str, list[int]] = {f: [] for f in FOLDERS}
    proxy = await fault_proxy_factory(broker.host, broker.port)
    async with asyncio.TaskGroup() as tg:
        pub = Publisher(mqtt_settings(proxy.port, max_inflight=5), "cut", cache)

        async def producer() -> None:
            for r in range(30):
                for f in FOLDERS:
                    expected[f] += produce(cache, f, 1 + 5 * r, 5)
                await asyncio.sleep(0.005)

        sub = tg.create_task(col.run())
        await col.subscribed.wait()
        tg.create_task(pub.run())
        prod = tg.create_task(producer())
        for n in (30, 120, 250):
            await col.wait_until(lambda m, n=n: len(col.events()) >= n)
            await proxy.cut(rst=True)
        await prod
        await wait_for(lambda: cache.outbox_count() == 0)
        total = sum(len(v) for v in expected.values())
        await col.wait_until(lambda m: sum(len(v) for v in first_seen_order(col.events()).values()) >= total)
        assert first_seen_order(col.events()) == expected
        assert_duplicates_identical(col.events())
        await pub.close()
        sub.cancel()


async def test_retained_summary_then_empty_payload_when_the_folder_is_deleted(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    cache = open_cache(tmp_path / "c.sqlite", "ret")
    pub = Publisher(mqtt_settings(broker.port), "ret", cache)
    produce(cache, "Chats/Bob", 1, 3)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        await wait_for(lambda: cache.outbox_count() == 0)
        # A new app connecting later gets the retained summary (and the retained status).
        late = Collector(broker.port, ["cpm/ret/folders/+", "cpm/ret/status"], client_id="ret-late")
        sub = tg.create_task(late.run())
        await late.wait_until(lambda m: any(x.topic == "cpm/ret/folders/Chats%2FBob" for x in m))
        (s,) = [x for x in late.messages if x.topic == "cpm/ret/folders/Chats%2FBob"]
        assert s.retain and s.json["messages"] == 3 and s.json["last"]["subject"] == "Chats/Bob #3"
        await late.wait_until(lambda m: any(x.topic == "cpm/ret/status" for x in m))
        # Deleting the folder clears the retained summary: live subscribers see an empty payload...
        cache.delete_folder("Chats/Bob")
        await late.wait_until(
            lambda m: any(x.topic == "cpm/ret/folders/Chats%2FBob" and not x.payload for x in m)
        )
        await wait_for(lambda: cache.outbox_count() == 0)
        sub.cancel()
        # ...and a new subscriber gets nothing retained for it. The sentinel is retained too and is
        # delivered after the first subscription's retained messages, so its arrival proves absence.
        pub.set_status("online", strategy="sentinel")
        newer = Collector(broker.port, ["cpm/ret/folders/+", "cpm/ret/status"], client_id="ret-newer")
        sub2 = tg.create_task(newer.run())
        await newer.wait_until(lambda m: any(x.topic == "cpm/ret/status" for x in m))
        assert not [x for x in newer.messages if x.topic.startswith("cpm/ret/folders/")]
        await pub.close()
        sub2.cancel()


async def test_an_event_the_broker_refuses_is_logged_and_does_not_block_the_rest(
    mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's ACL forbids one folder's events: MQTT 5 answers each of those PUBLISHes with a
    PUBACK that says "Not authorized" (0x87). No retry can change that answer, so the row leaves
    the outbox with a warning naming the reason, and the other folders' events, committed after
    it, still arrive."""
    acl = tmp_path / "acl"
    acl.write_text("topic write cpm/acl/folders/ok/#\ntopic write cpm/acl/status\ntopic read cpm/acl/#\n")
    broker = mqtt_broker_factory(extra_conf=f"{BROKER_CONF}\nacl_file {acl}")
    col = Collector(broker.port, ["cpm/acl/folders/+/events"], client_id="acl-sub")
    cache = open_cache(tmp_path / "c.sqlite", "acl")
    pub = Publisher(mqtt_settings(broker.port), "acl", cache)
    produce(cache, "denied", 1, 3)
    expected = {"ok": produce(cache, "ok", 1, 3)}
    with caplog.at_level(logging.WARNING, logger="cpmsync.daemon.mqtt"):
        async with asyncio.TaskGroup() as tg:
            sub = tg.create_task(col.run())
            await col.subscribed.wait()
            tg.create_task(pub.run())
            await col.wait_until(lambda m: first_seen_order(col.events()) == expected)
            await wait_for(lambda: cache.outbox_count() == 0)
            await pub.close()
            sub.cancel()
    refused = [r for r in caplog.records if r.getMessage() == "mqtt broker refused an event"]
    # the denied folder's events (folder_added, 3 message_added) and its retained summary
    topics = [getattr(r, "topic", None) for r in refused]
    assert topics == 4 * ["cpm/acl/folders/denied/events"] + ["cpm/acl/folders/denied"]
    assert all(getattr(r, "reason", None) == "Not authorized" for r in refused)
