"""`cpmsync app web`: a reference inbox page, served with a small server-sent-events bridge.

The page is an app like any other: it learns everything from the daemon's MQTT topics and acts
through `{prefix}/{account}/actions`. The browser does not speak MQTT itself: this process
subscribes once and streams what arrives to each open page as server-sent events (plain HTTP,
reconnects built into every browser's EventSource), and forwards the page's actions (HTTP POST)
as MQTT publishes. So nothing from npm is needed and no broker WebSocket listener must be opened
(README: "A reference inbox page"). The conversation view reads the messages from the daemon's
cache, read-only, as `cpmsync daemon stats` does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiomqtt

from cpmsync.daemon.publisher import mqtt_client
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.topics import Topics
from cpmsync.logs import kv

__all__ = ["InboxBridge", "serve_inbox"]

log = logging.getLogger("cpmsync.app.web")

MAX_REQUEST_BYTES = 5 * 1024 * 1024  # an append's base64 message fits; more is refused
RECENT_EVENTS = 50  # per folder, for the conversation view
SSE_KEEPALIVE_S = 15.0  # a comment line so proxies and the browser keep the stream open


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


class InboxBridge:
    """MQTT -> server-sent events for the pages, HTTP POST -> MQTT actions; one per account."""

    def __init__(self, settings: DaemonSettings, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.settings = settings
        self.host, self.port = host, port
        self.topics = Topics(settings.mqtt.topic_prefix, settings.account.id)
        self.actions_topic = f"{self.topics.prefix}/{self.topics.account}/actions"
        self.results_topic = f"{self.actions_topic}/results"
        self.summaries: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None
        self.recent: dict[str, collections.deque[dict[str, Any]]] = {}
        self._pages: set[asyncio.Queue[bytes]] = set()
        self._client: aiomqtt.Client | None = None
        self.ready = asyncio.Event()  # listening and subscribed
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def run(self) -> None:
        """Serve until cancelled."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        async with self._server, asyncio.TaskGroup() as tg:
            tg.create_task(self._mqtt())
            tg.create_task(self._server.serve_forever())

    # ------------------------------------------------------------------ MQTT side

    async def _mqtt(self) -> None:
        cid = f"cpmsync-web-{self.topics.account}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        while True:
            try:
                async with mqtt_client(self.settings.mqtt, client_id=cid, persistent=False) as client:
                    for t in (self.topics.status, self.topics.all_summaries, self.topics.all_events):
                        await client.subscribe(t, qos=1)
                    await client.subscribe(self.results_topic, qos=1)
                    self._client = client
                    self.ready.set()
                    async for m in client.messages:
                        self._received(str(m.topic), m.payload)
            except aiomqtt.MqttError as e:
                self._client = None
                log.warning("mqtt broker unavailable, retrying", extra=kv(error=str(e)))
                await asyncio.sleep(1.0)

    def _received(self, topic: str, raw: Any) -> None:
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        data = json.loads(payload) if payload else None
        if topic == self.results_topic:
            self._send("result", data)
            return
        kind, folder = self.topics.parse(topic)
        if kind == "status":
            self.status = data
            self._send("status", data)
        elif kind == "summary" and folder is not None:
            if data is None:
                self.summaries.pop(folder, None)
                self.recent.pop(folder, None)
                self._send("gone", {"name": folder})
            else:
                self.summaries[folder] = data
                self._send("summary", data)
        elif kind == "events" and folder is not None and data is not None:
            self.recent.setdefault(folder, collections.deque(maxlen=RECENT_EVENTS)).append(data)
            self._send("event", data)

    def _send(self, name: str, data: Any) -> None:
        frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        for q in list(self._pages):
            q.put_nowait(frame)

    async def publish_action(self, action: dict[str, Any]) -> str:
        """Publish an app action (QoS 1); an id is chosen when the page gave none."""
        client = self._client
        if client is None:
            raise ConnectionError("the MQTT broker is not connected")
        action.setdefault("id", uuid.uuid4().hex)
        await client.publish(self.actions_topic, json.dumps(action).encode(), qos=1)
        return str(action["id"])

    # ------------------------------------------------------------------ HTTP side

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = await _read_request(reader)
            if req is None:
                return
            await self._route(req, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except ValueError as e:
            await _respond(writer, 400, "text/plain", str(e).encode())
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        routes: dict[tuple[str, str], Callable[[_Request, asyncio.StreamWriter], Awaitable[None]]] = {
            ("GET", "/"): self._page,
            ("GET", "/api/events"): self._events,
            ("GET", "/api/messages"): self._messages,
            ("POST", "/api/actions"): self._action,
        }
        handler = routes.get((req.method, req.path))
        if handler is None:
            await _respond(writer, 404, "text/plain", b"not found")
            return
        await handler(req, writer)

    async def _page(self, _req: _Request, writer: asyncio.StreamWriter) -> None:
        html = resources.files("cpmsync.app").joinpath("static/inbox.html").read_bytes()
        await _respond(writer, 200, "text/html; charset=utf-8", html)

    async def _events(self, _req: _Request, writer: asyncio.StreamWriter) -> None:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        init = {
            "account": self.topics.account,
            "status": self.status,
            "summaries": list(self.summaries.values()),
        }
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            b"Connection: keep-alive\r\n\r\n"
            + f"retry: 1000\nevent: init\ndata: {json.dumps(init)}\n\n".encode()
        )
        await writer.drain()
        self._pages.add(q)
        try:
            while True:
                try:
                    async with asyncio.timeout(SSE_KEEPALIVE_S):
                        frame = await q.get()
                except TimeoutError:
                    frame = b": keepalive\n\n"
                writer.write(frame)
                await writer.drain()
        finally:
            self._pages.discard(q)

    async def _messages(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        folder = (req.query.get("folder") or [""])[0]
        msgs = await asyncio.to_thread(self._cached_messages, folder)
        body = {"folder": folder, "messages": msgs, "events": list(self.recent.get(folder, ()))}
        await _respond(writer, 200, "application/json", json.dumps(body).encode())

    def _cached_messages(self, folder: str) -> list[dict[str, Any]]:
        from cpmsync.daemon.cache import Cache
        from cpmsync.models.schema import CacheSchemaError

        try:
            cache = Cache.open(self.settings.cache.path, self.topics.account, upgrade=False)
        except (CacheSchemaError, OSError):
            return []
        try:
            rows = cache.messages(folder)[-100:]
        finally:
            cache.close()
        return [
            {
                "uid": m.uid,
                "from": m.from_,
                "subject": m.subject,
                "date": m.date.isoformat() if m.date else None,
                "preview": m.preview,
                "seen": "\\Seen" in m.flags,
            }
            for m in reversed(rows)
        ]

    async def _action(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        try:
            action = json.loads(req.body)
        except ValueError:
            await _respond(writer, 400, "application/json", b'{"error": "not JSON"}')
            return
        if not isinstance(action, dict):
            await _respond(writer, 400, "application/json", b'{"error": "not a JSON object"}')
            return
        try:
            aid = await self.publish_action(action)
        except (ConnectionError, aiomqtt.MqttError) as e:
            await _respond(writer, 503, "application/json", json.dumps({"error": str(e)}).encode())
            return
        await _respond(writer, 202, "application/json", json.dumps({"id": aid}).encode())


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """One HTTP/1.1 request (Content-Length bodies only: all the page sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    method, target, _version = parts
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request too large")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    return _Request(method.upper(), url.path, parse_qs(url.query), body)


async def _respond(writer: asyncio.StreamWriter, code: int, ctype: str, body: bytes) -> None:
    reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 503: "Unavailable"}
    writer.write(
        f"HTTP/1.1 {code} {reason.get(code, 'Status')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def serve_inbox(
    settings: DaemonSettings, host: str, port: int, *, on_ready: Callable[[InboxBridge], None] | None = None
) -> None:
    """Run the bridge until cancelled; `on_ready` once it listens and is subscribed."""
    bridge = InboxBridge(settings, host, port)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(bridge.run())
        await bridge.ready.wait()
        if on_ready is not None:
            on_ready(bridge)
