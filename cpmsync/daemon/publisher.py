"""Drain the outbox to the MQTT broker: at least once, in commit order, never dropped.

A row leaves the outbox only after the broker acknowledged it (PUBACK for QoS 1), so a broker
that is down or a cut connection delays events but loses none; a resent event keeps its id.
The status topic is not queued: only the latest state matters, and the Last Will covers a crash.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cpmsync.daemon.cache import Cache, OutboxItem
from cpmsync.daemon.settings import MqttSettings
from cpmsync.daemon.topics import Topics
from cpmsync.event_wait import wait_event
from cpmsync.logs import kv
from cpmsync.models.events import StatusPayload, StatusState

__all__ = ["Inbox", "Publisher", "mqtt_client"]

log = logging.getLogger("cpmsync.daemon.mqtt")

_KEEP: Any = object()


def mqtt_client(
    settings: MqttSettings,
    *,
    client_id: str,
    persistent: bool,
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """An MQTT v5 client from the `[mqtt]` settings (credentials and TLS included)."""
    props: Properties | None = None
    if persistent:
        # Session survives reconnects (clean_start false + expiry): in-flight QoS 1 state is kept.
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = settings.session_expiry_s
    tls_context = None
    if settings.tls:
        tls_context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
    client = aiomqtt.Client(
        settings.host,
        settings.effective_port,
        username=settings.username,
        password=settings.secret(),
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        will=will,
        clean_start=not persistent,
        properties=props,
        keepalive=settings.keepalive_s,
        timeout=settings.connect_timeout_s,
        tls_context=tls_context,
        max_inflight_messages=settings.max_inflight,
        # Small packets (PUBLISH, PUBACK) must not wait for Nagle: measured 36 ms per window without.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    # aiomqtt warns above 10 pending publishes; a full window of max_inflight is normal here.
    client.pending_calls_threshold = settings.max_inflight + 10
    return client


class Inbox(Protocol):
    """What the daemon subscribes to (apps' actions: daemon/actions.py ActionInbox)."""

    @property
    def subscriptions(self) -> Sequence[str]: ...

    async def received(self, message: aiomqtt.Message) -> None: ...

    async def serve(self, client: aiomqtt.Client) -> None: ...


class Publisher:
    """Owns the daemon's MQTT connection; run `run()` in a TaskGroup and `close()` to stop it."""

    def __init__(
        self,
        settings: MqttSettings,
        account_id: str,
        cache: Cache,
        *,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.account_id = account_id
        self.cache = cache
        self.topics = Topics(settings.topic_prefix, account_id)
        self.client_id = client_id or settings.client_id or f"cpmsync-daemon-{account_id}"
        self.connected = False
        self.published = 0
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closing = False
        self._running = False
        now = datetime.now(UTC)
        self._status = StatusPayload(account=account_id, state="connecting", since=now)
        self._status_dirty = True
        # The push loop's hand-off (caught_up): commits seen, and the count the drain has taken
        # its turn on; the drain's current progress event, woken by a commit too.
        self._commits = 0
        self._caught_up = 0
        self._turn_taken = asyncio.Event()
        self._serving = False
        self._progress: asyncio.Event | None = None
        cache.set_commit_listener(self._committed)
        self.inbox: Inbox | None = None  # set before run(): the daemon's subscriptions

    # ------------------------------------------------------------------ public

    def notify(self) -> None:
        """Wake the drain loop (new outbox rows); safe from any thread."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def _committed(self) -> None:
        """The cache committed outbox rows (its commit listener; on the loop's thread)."""
        self._commits += 1
        if self._progress is not None:
            self._progress.set()  # a drain waiting for acks reads the new rows now
        self.notify()

    async def caught_up(self) -> None:
        """Return once the drain has taken its turn on every commit made so far: their PUBLISHes
        are handed to the MQTT client, or they wait for the broker (a full window, a status
        publish, no connection). Never waits for the broker itself.

        The push loop calls it before it sends IDLE: otherwise the publisher only got the event
        loop after the IDLE went out and the push loop's own bookkeeping ran, the largest stage
        between a change and its event. Nothing uncommitted is published: the rows come from the
        outbox, which only holds committed ones, and leave it on PUBACK as before.
        """
        target = self._commits
        while self._serving and self._caught_up < target:
            self._turn_taken.clear()
            await self._turn_taken.wait()

    def _took_turn(self, commits: int) -> None:
        self._caught_up = max(self._caught_up, commits)
        self._turn_taken.set()

    @property
    def status(self) -> StatusPayload:
        return self._status

    def set_status(
        self,
        state: StatusState | None = None,
        *,
        capabilities: list[str] | None = _KEEP,
        strategy: str | None = _KEEP,
        last_sync: datetime | None = _KEEP,
        last_error: str | None = _KEEP,
    ) -> None:
        """Update the retained status; fields not given keep their value; the latest wins."""
        old = self._status
        self._status = StatusPayload(
            account=self.account_id,
            state=state if state is not None else old.state,
            capabilities=old.capabilities if capabilities is _KEEP else list(capabilities or []),
            strategy=old.strategy if strategy is _KEEP else strategy,
            last_sync=old.last_sync if last_sync is _KEEP else last_sync,
            last_error=old.last_error if last_error is _KEEP else last_error,
            since=datetime.now(UTC) if state is not None and state != old.state else old.since,
        )
        self._status_dirty = True
        self.notify()

    async def close(self, timeout_s: float | None = None) -> None:
        """Publish offline, drain what the broker takes within the timeout, disconnect."""
        if not self._running:
            return
        self._closing = True
        self.set_status("offline")
        timeout = timeout_s if timeout_s is not None else self.settings.close_timeout_s
        try:
            async with asyncio.timeout(timeout + self.settings.connect_timeout_s):
                await self._stopped.wait()
        except TimeoutError:
            log.warning("mqtt publisher did not stop in time", extra=kv(timeout_s=timeout))

    async def run(self) -> None:
        """Connect, drain, reconnect with backoff; returns after close()."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        self._stopped.clear()
        delay = self.settings.reconnect_min_s
        failures = 0
        try:
            while not self._closing:
                try:
                    await self._session()
                    return
                except aiomqtt.MqttError as e:
                    if self.connected:  # it was up: a fresh outage, start the backoff again
                        failures, delay = 0, self.settings.reconnect_min_s
                    failures += 1
                    # One warning per outage, not one per retry: a broker that is down is not news.
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    log.log(
                        level,
                        "mqtt broker unavailable, events kept in the outbox",
                        extra=kv(error=str(e), retry_s=round(delay, 2), pending=self.cache.outbox_count()),
                    )
                finally:
                    self.connected = False
                if self._closing:
                    return
                await self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.settings.reconnect_max_s)
        finally:
            self._running = False
            self._stopped.set()

    # ------------------------------------------------------------------ internals

    async def _session(self) -> None:
        """One connection: drain until close(); any connection loss surfaces as one MqttError."""
        try:
            client = mqtt_client(self.settings, client_id=self.client_id, persistent=True, will=self._will())
            if self.inbox is not None:
                # An action is acknowledged (PUBACK) only once it is committed (_watch_connection):
                # a crash before that and the broker sends it again.
                client._client.manual_ack_set(True)
            async with client:
                self.connected = True
                # The Last Will of a dropped connection may have said offline meanwhile.
                self._status_dirty = True
                log.info(
                    "mqtt connected",
                    extra=kv(
                        host=self.settings.host,
                        port=self.settings.effective_port,
                        pending=self.cache.outbox_count(),
                    ),
                )
                async with asyncio.TaskGroup() as tg:
                    watcher = tg.create_task(self._watch_connection(client))
                    inbox: asyncio.Task[None] | None = None
                    if self.inbox is not None:
                        for topic in self.inbox.subscriptions:
                            await client.subscribe(topic, qos=1)
                        inbox = tg.create_task(self.inbox.serve(client))
                    await self._serve(client)
                    watcher.cancel()
                    if inbox is not None:
                        inbox.cancel()
        except ExceptionGroup as eg:
            mqtt_errors, rest = eg.split(aiomqtt.MqttError)
            if rest is not None:
                raise
            assert mqtt_errors is not None
            first: BaseException = mqtt_errors
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    async def _watch_connection(self, client: aiomqtt.Client) -> None:
        """Fail fast on a lost connection: pending PUBACKs would otherwise wait for ack_timeout_s.

        The message iterator only ends by disconnection. Messages (the inbox's subscriptions) are
        handed over, then acknowledged.
        """
        async for message in client.messages:
            if self.inbox is not None:
                await self.inbox.received(message)
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)
        raise aiomqtt.MqttError("disconnected")

    def _will(self) -> aiomqtt.Will:
        offline = self._status.model_copy(update={"state": "offline", "since": datetime.now(UTC)})
        return aiomqtt.Will(self.topics.status, offline.to_json().encode(), qos=1, retain=True)

    async def _sleep(self, seconds: float) -> None:
        """Back off, but wake early for close()."""
        self._wake.clear()
        if self._closing:
            return
        try:
            async with asyncio.timeout(seconds):
                while not self._closing:
                    await self._wake.wait()
                    self._wake.clear()
        except TimeoutError:
            pass

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._serving = True
        try:
            await self._serve_loop(client)
        finally:
            self._serving = False
            self._turn_taken.set()  # a waiting push loop must not wait for a reconnect

    async def _serve_loop(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            self._wake.clear()  # before reading, so a commit racing with the read still wakes us
            if self._closing and deadline is None:
                deadline = loop.time() + self.settings.close_timeout_s
            if self._status_dirty:
                self._status_dirty = False
                self._took_turn(self._commits)  # the PUBACK wait below is the broker's, not ours
                await client.publish(
                    self.topics.status,
                    self._status.to_json().encode(),
                    qos=1,
                    retain=True,
                    timeout=self.settings.ack_timeout_s,
                )
            drained = await self._drain(client, deadline)
            if self._closing and self._status_dirty:
                continue  # close() raced with a status publish: send the offline state too
            if self._closing:
                if not drained:
                    log.warning("mqtt close: outbox not drained", extra=kv(pending=self.cache.outbox_count()))
                return
            if not self._wake.is_set():
                await self._wake.wait()

    async def _drain(self, client: aiomqtt.Client, deadline: float | None) -> bool:
        """Publish the outbox in id order with a sliding window of max_inflight unacknowledged rows.

        A row is deleted only once its PUBACK came; until then it is excluded from re-reading, not
        resent. Rows leave in id order on one TCP stream, so per-folder order holds. Returns True
        when the outbox was found empty, False when the close deadline stopped it. A PUBACK that
        is ack_timeout_s late fails the connection (an MqttError), and the rows go again on the
        next one.

        The rows go through paho directly (`_Window`), not `aiomqtt.Client.publish`: that call
        costs a task, an event and a `wait_for` per row, more than half of the ~120 µs of CPU a
        row took, and a first sync publishes one row per message (bench_daemon_publish.py).
        """
        loop = asyncio.get_running_loop()
        progress = self._progress = asyncio.Event()
        acks = _Window(client, progress, self.settings.ack_timeout_s)
        after = 0  # the last row id taken: the next read starts above it (`Cache.outbox_batch`)

        def flush_acks() -> None:
            done = acks.take_acked()
            if done:
                self.cache.outbox_ack(done)
                self.published += len(done)

        drained = False
        try:
            while True:
                # Acknowledged rows leave in one transaction per read, not one per wake-up.
                flush_acks()
                if deadline is not None and loop.time() > deadline:
                    break
                progress.clear()  # before reading: a commit after the read wakes the wait below
                commits = self._commits
                batch = self.cache.outbox_batch(_READ_AHEAD, after=after)
                for item in batch:
                    while acks.in_flight >= self.settings.max_inflight:
                        # This row and every commit made so far, even during the wait, waits for
                        # PUBACKs, not for the push loop.
                        self._took_turn(self._commits)
                        await acks.wait()
                    acks.publish(item)
                    after = item.id
                # The PUBLISHes are queued on the MQTT socket before the push loop, woken by this,
                # sends its IDLE.
                self._took_turn(commits)
                if batch:
                    continue
                if not acks.in_flight and not acks.has_acked:
                    drained = True
                    break
                if commits == self._commits and not acks.has_acked:
                    # Nothing more to send: read again after an ack or a commit.
                    await acks.wait()
        finally:
            acks.close()
            self._progress = None
            flush_acks()  # what the broker took must not be resent, even when cancelled
        return drained


_READ_AHEAD = 256
"""Outbox rows read at once by the drain: a first sync's thousands of events in few reads."""


class _Window:
    """The drain's publishes in flight on one MQTT connection, by packet id.

    Hooks paho's on_publish (called on the event loop's thread, from aiomqtt's socket reader)
    for the drain's packet ids and hands every other id (the status's, the action results') to
    aiomqtt's own handler, so `aiomqtt.Client.publish` keeps working beside it."""

    def __init__(self, client: aiomqtt.Client, progress: asyncio.Event, ack_timeout_s: float) -> None:
        self._paho = client._client
        self._progress = progress
        self._ack_timeout_s = ack_timeout_s
        self._sent: dict[int, tuple[int, float, str]] = {}  # packet id -> (outbox id, sent at, topic)
        self._acked: list[int] = []
        # aiomqtt's handler, paho's callback API version 2 (five arguments, as `_on_publish`).
        self._previous: Callable[..., None] | None = self._paho.on_publish
        self._paho.on_publish = self._on_publish

    @property
    def in_flight(self) -> int:
        return len(self._sent)

    @property
    def has_acked(self) -> bool:
        return bool(self._acked)

    def publish(self, item: OutboxItem) -> None:
        """Queue one row's PUBLISH on the connection; raises MqttError when paho refuses it."""
        info = self._paho.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if info.is_published():  # QoS 0: written already, nothing will acknowledge it
            self._acked.append(item.id)
        else:
            self._sent[info.mid] = (item.id, time.monotonic(), item.topic)

    def take_acked(self) -> list[int]:
        done, self._acked = self._acked, []
        return done

    async def wait(self) -> None:
        """Until an ack or a commit (`progress`); MqttError when the oldest PUBLISH in flight has
        waited ack_timeout_s for its PUBACK."""
        self._progress.clear()
        if not self._sent:
            await self._progress.wait()
            return
        _oid, sent_at, _topic = next(iter(self._sent.values()))  # the oldest: dicts keep insertion order
        if not await wait_event(self._progress, sent_at + self._ack_timeout_s - time.monotonic()):
            raise aiomqtt.MqttError(f"no PUBACK within {self._ack_timeout_s:g} s")

    def close(self) -> None:
        """Give on_publish back: late PUBACKs of this window are aiomqtt's to ignore."""
        self._paho.on_publish = self._previous

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        sent = self._sent.pop(mid, None)
        if sent is None:
            if self._previous is not None:
                self._previous(client, userdata, mid, reason_code, properties)
            return
        if reason_code.is_failure:
            # The broker will not take it, now or on a retry (an ACL, a quota): resending it would
            # block every later event behind it, so it leaves the outbox with a warning.
            log.warning(
                "mqtt broker refused an event",
                extra=kv(topic=sent[2], outbox_id=sent[0], reason=str(reason_code)),
            )
        self._acked.append(sent[0])
        self._progress.set()
