"""The retained status topic: online while the daemon runs, offline after a clean stop, and
offline through the MQTT v5 Last Will when the daemon dies without a word."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from daemon_mqtt_helpers import BROKER_CONF, Collector, mqtt_settings, open_cache, wait_for

from cpmsync.daemon.publisher import Publisher
from cpmsync.models.events import StatusPayload
from tests.support import FaultProxy, MosquittoBroker, free_port

HERE = Path(__file__).parent


def statuses(col: Collector, account: str) -> list[StatusPayload]:
    return [
        StatusPayload.model_validate_json(m.payload)
        for m in col.messages
        if m.topic == f"cpm/{account}/status" and m.payload
    ]


@contextlib.asynccontextmanager
async def watched_publisher(
    broker: MosquittoBroker, tmp_path: Path, account: str, *, via_port: int | None = None
) -> AsyncIterator[tuple[Publisher, Collector, asyncio.TaskGroup]]:
    """A running Publisher of `account` (to the broker, or through the port `via_port`) and a
    Collector of its status topic, subscribed before the publisher starts."""
    cache = open_cache(tmp_path / "c.sqlite", account)
    col = Collector(broker.port, [f"cpm/{account}/status"], client_id=f"{account}-sub")
    pub = Publisher(mqtt_settings(via_port or broker.port), account, cache)
    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(col.run())
        await col.subscribed.wait()
        tg.create_task(pub.run())
        yield pub, col, tg
        sub.cancel()


async def test_status_online_then_offline_on_clean_close(broker: MosquittoBroker, tmp_path: Path) -> None:
    async with watched_publisher(broker, tmp_path, "st") as (pub, col, _tg):
        pub.set_status("syncing", capabilities=["QRESYNC", "NOTIFY"], strategy="list-status")
        await col.wait_until(lambda m: any(s.state == "syncing" for s in statuses(col, "st")))
        pub.set_status("online", last_error="imap: connection reset")
        await col.wait_until(lambda m: statuses(col, "st")[-1].state == "online")
        last = statuses(col, "st")[-1]
        assert last.capabilities == ["QRESYNC", "NOTIFY"] and last.strategy == "list-status"
        assert last.last_error == "imap: connection reset"
        await pub.close()
        await col.wait_until(lambda m: statuses(col, "st")[-1].state == "offline")


async def test_last_will_sets_offline_when_the_daemon_is_killed(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    script = HERE / "daemon_publisher_proc.py"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(broker.port),
        "will",
        str(tmp_path / "c.sqlite"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        assert line.strip() == b"connected"
        col = Collector(broker.port, ["cpm/will/status"], client_id="will-sub")
        async with asyncio.TaskGroup() as tg:
            sub = tg.create_task(col.run())
            await col.wait_until(lambda m: bool(statuses(col, "will")))
            first = statuses(col, "will")[0]
            assert first.state == "online" and first.strategy == "list-changedsince"
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sees the socket close
            await proc.wait()
            await col.wait_until(lambda m: statuses(col, "will")[-1].state == "offline")
            will = statuses(col, "will")[-1]
            assert will.capabilities == ["QRESYNC", "LIST-CHANGEDSINCE"]
            # and it is retained: an app starting now learns the daemon is offline
            late = Collector(broker.port, ["cpm/will/status"], client_id="will-late")
            sub2 = tg.create_task(late.run())
            await late.wait_until(lambda m: bool(statuses(late, "will")))
            assert statuses(late, "will")[0].state == "offline"
            sub.cancel()
            sub2.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_close_without_broker_returns(tmp_path: Path) -> None:
    """Stopping while the broker is unreachable must not hang the daemon's shutdown."""
    cache = open_cache(tmp_path / "c.sqlite", "nob")
    pub = Publisher(mqtt_settings(free_port()), "nob", cache)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        await wait_for(lambda: pub._running)
        await pub.close()
    assert not pub.connected


async def test_close_racing_a_status_publish_still_ends_offline(
    mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    broker = mqtt_broker_factory(extra_conf=BROKER_CONF)
    async with watched_publisher(broker, tmp_path, "race") as (pub, col, tg):
        await col.wait_until(lambda m: bool(statuses(col, "race")))
        broker.pause()  # the next status publish waits for its PUBACK...
        try:
            pub.set_status("syncing")
            await asyncio.sleep(0.1)
            closing = tg.create_task(pub.close())  # ...while close() asks for offline
            await asyncio.sleep(0.1)
        finally:
            broker.resume()
        await closing
        await col.wait_until(lambda m: statuses(col, "race")[-1].state == "offline")


async def test_reconnect_republishes_status_after_the_last_will(
    broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Callable[..., Awaitable[FaultProxy]]
) -> None:
    proxy = await fault_proxy_factory(broker.host, broker.port)
    async with watched_publisher(broker, tmp_path, "recon", via_port=proxy.port) as (pub, col, _tg):
        pub.set_status("online", strategy="list-status")
        await col.wait_until(lambda m: any(s.strategy == "list-status" for s in statuses(col, "recon")))
        await proxy.cut(rst=True)  # abrupt: the broker publishes the Last Will (offline)
        await col.wait_until(lambda m: statuses(col, "recon")[-1].state == "offline")
        await col.wait_until(lambda m: statuses(col, "recon")[-1].state == "online")  # back after reconnect
        assert statuses(col, "recon")[-1].strategy == "list-status"
        await pub.close()
