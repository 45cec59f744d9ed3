"""Test helpers shared by the daemon's MQTT tests: a collecting subscriber and event producers."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.daemon.settings import MqttSettings

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
STARTUP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A real mosquitto on 127.0.0.1:port; restartable on the same port.

    With `persistent=True` it keeps sessions on disk: written on a graceful stop, and by `save()`,
    so a subscriber's session survives even a SIGKILL of the broker.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        persistent: bool = False,
        port: int | None = None,
        listener_lines: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            *(listener_lines or ["allow_anonymous true"]),
            "set_tcp_nodelay true",  # as config/daemon.toml recommends for the device broker
            f"persistence {'true' if persistent else 'false'}",
            # Run as root, mosquitto drops to user "mosquitto", who cannot write the test's tmp dir;
            # naming the current user keeps it as is (and is ignored when not root).
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if persistent:
            lines.append(f"persistence_location {workdir}/")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def save(self) -> None:
        """Make mosquitto write its persistence file now (SIGUSR1) and wait until it exists."""
        assert self.proc is not None and self.persistent
        db = self.workdir / "mosquitto.db"
        db.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not db.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not save its database")
            time.sleep(0.01)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


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

    async def run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    for t in self.topics:
                        await client.subscribe(t, qos=1)
                    self.subscribed.set()
                    async for m in client.messages:
                        raw = m.payload
                        data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
                        self.messages.append(Received(str(m.topic), data, bool(m.retain)))
                        self._changed.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

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


class CuttingProxy:
    """A TCP relay in front of the real broker that can cut every connection abruptly (RST-like).

    Used where a test needs a connection cut at an exact moment without the broker itself dying.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.cuts = 0

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_w}

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                w.transport.abort()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump(reader, up_w))
            tg.create_task(pump(up_r, writer))
        self._writers -= {writer, up_w}

    def cut(self) -> None:
        """Abort every relayed connection now (bytes in flight are lost, as on a radio drop)."""
        self.cuts += 1
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
