"""Test helpers shared by the daemon's MQTT tests: a collecting subscriber and event producers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.daemon.settings import MqttSettings
from tests.support import MosquittoBroker

# As config/daemon.toml recommends for the device broker: small PUBLISH/PUBACK packets not held
# back by Nagle. Every daemon test broker gets it (shared launcher: tests.support.mosquitto.MosquittoBroker).
BROKER_CONF = "set_tcp_nodelay true"
SAVE_TIMEOUT_S = 10.0


def save_sessions(broker: MosquittoBroker) -> None:
    """Make a persistent broker write its database now (SIGUSR1) and wait until it exists, so a
    subscriber's session survives even a SIGKILL of the broker."""
    assert broker.persistence and broker.pid is not None
    db = broker.root / "mosquitto.db"
    db.unlink(missing_ok=True)
    os.kill(broker.pid, signal.SIGUSR1)
    deadline = time.monotonic() + SAVE_TIMEOUT_S
    while not db.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto did not save its database to {db}")
        time.sleep(0.01)


WAIT_S = 30.0  # safety net so a broken test fails instead of hanging; never a performance bound


def mqtt_settings(port: int, **kw: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "ack_timeout_s": 3,
        "connect_timeout_s": 3,
        "close_timeout_s": 3,
    }
    base.update(kw)
    return MqttSettings(**base)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None = None  # MQTT 5 CorrelationData (request/response)

    @property
    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


@dataclass
class Collector:
    """A subscriber that keeps everything it receives and reconnects when the broker goes away."""

    port: int
    topics: list[str]
    client_id: str = "collector"
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _client(self) -> aiomqtt.Client:
        props = None
        if self.persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self.persistent,
            properties=props,
            timeout=3,
            username=self.username,
            password=self.password,
            tls_context=self.tls_context,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Collect in a task for the body of the `async with`, subscribed before the body runs."""
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(self.run())
            await self.subscribed.wait()
            try:
                yield
            finally:
                task.cancel()

    async def run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    for t in self.topics:
                        await client.subscribe(t, qos=1)
                    self.subscribed.set()
                    try:
                        async for m in client.messages:
                            self._keep(m)
                    except aiomqtt.MqttError:
                        # aiomqtt acknowledged these on arrival; its iterator raises at a disconnect
                        # with some still queued: keep them, the broker will not send them again.
                        while not client._queue.empty():
                            self._keep(client._queue.get_nowait())
                        raise
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

    def _keep(self, m: aiomqtt.Message) -> None:
        raw = m.payload
        data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        corr = getattr(m.properties, "CorrelationData", None) if m.properties is not None else None
        self.messages.append(Received(str(m.topic), data, bool(m.retain), corr))
        self._changed.set()

    async def subscribe_once(self) -> None:
        """Create the persistent session (subscriptions) and leave."""
        async with self._client() as client:
            for t in self.topics:
                await client.subscribe(t, qos=1)

    async def wait_until(self, pred: Callable[[list[Received]], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not pred(self.messages):
                self._changed.clear()
                await self._changed.wait()

    def events(self) -> list[dict[str, Any]]:
        return [m.json for m in self.messages if m.topic.endswith("/events") and m.payload]


async def wait_for(pred: Callable[[], bool], interval_s: float = 0.02) -> None:
    """Poll a condition the test cannot be told about (e.g. an outbox count)."""
    async with asyncio.timeout(WAIT_S):
        while not pred():  # noqa: ASYNC110 - the outbox has no event to await from outside
            await asyncio.sleep(interval_s)


def open_cache(path: Path, account: str) -> Cache:
    return Cache.open(path, account)


def produce(cache: Cache, folder: str, first_uid: int, n: int, uidvalidity: int = 1) -> list[int]:
    """One folder sync adding n messages; returns their uids."""
    uids = list(range(first_uid, first_uid + n))
    with cache.folder_sync(folder) as fs:
        fs.set_status(uidvalidity=uidvalidity, uidnext=uids[-1] + 1, highestmodseq=1000 + uids[-1])
        for u in uids:
            fs.add_message(
                MessageData(uid=u, modseq=1000 + u, subject=f"{folder} #{u}", from_="x@example.org")
            )
    return uids


def assert_duplicates_identical(events: list[dict[str, Any]]) -> None:
    """Every copy of an event (a resend after a cut) says the same thing as the first one."""
    by_id: dict[str, dict[str, Any]] = {}
    for e in events:
        prev = by_id.setdefault(e["id"], e)
        assert (prev["kind"], prev["folder"], prev["uids"]) == (e["kind"], e["folder"], e["uids"])


def first_seen_order(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per folder, the uids of message_added events in the order first seen (duplicates dropped)."""
    seen: set[str] = set()
    out: dict[str, list[int]] = {}
    for e in events:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        if e["kind"] == "message_added":
            out.setdefault(e["folder"], []).extend(e["uids"])
    return out
