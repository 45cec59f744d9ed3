"""Helpers for the msgstore IMAP server tests: a real server on a free port, a tiny typed client.

The server runs in-process in the test's event loop (`running_server`), or in its own thread
(`ThreadServer`) for hypothesis tests and blocking third-party clients. The client speaks raw
command lines (so tests show the exact wire text the RFCs show) and parses the answers with the
codec's ResponseParser.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpmsync.imap import (
    NEED_DATA,
    ContinuationRequest,
    ResponseParser,
    StatusResponse,
)
from cpmsync.msgstore import MessageStore, MsgstoreSettings
from cpmsync.msgstore.server import ImapServer

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def make_settings(**sections: dict[str, Any]) -> MsgstoreSettings:
    data: dict[str, dict[str, Any]] = {
        "server": {"listen": ["127.0.0.1:0"]},
        "limits": {"auth_failure_delay_ms": 0},
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return MsgstoreSettings(**data)


_TEMPLATES: dict[tuple[tuple[str, str], ...], Path] = {}
_TEMPLATE_DIR = tempfile.TemporaryDirectory(prefix="cpm-msgstore-tpl-")


def make_store(tmp: Path, users: dict[str, str] | None = None) -> MessageStore:
    """A fresh SQLite store with `users`; copied from a per-process template so each test does not
    pay the schema and the argon2 hashes again."""
    key = tuple(sorted((USERS if users is None else users).items()))
    template = _TEMPLATES.get(key)
    if template is None:
        template = Path(_TEMPLATE_DIR.name) / f"t{len(_TEMPLATES)}.sqlite"
        tpl = MessageStore(f"sqlite:///{template}")
        for u, p in key:
            tpl.add_user(u, p)
        tpl.close()
        _TEMPLATES[key] = template
    target = tmp / "msgstore.sqlite"
    shutil.copyfile(template, target)
    return MessageStore(f"sqlite:///{target}")


@dataclass
class Running:
    server: ImapServer
    store: MessageStore
    settings: MsgstoreSettings
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, **kw: Any) -> Client:
        return Client(self.host, self.port, **kw)

    @contextlib.asynccontextmanager
    async def session(self, user: str = "alice") -> AsyncIterator[Client]:
        """A client logged in as `user` (its password from USERS)."""
        async with self.client() as c:
            await c.login(user)
            yield c


@contextlib.asynccontextmanager
async def running_server(
    settings: MsgstoreSettings | None = None, store: MessageStore | None = None
) -> AsyncIterator[Running]:
    """An ImapServer in this event loop on a free port (fresh SQLite store unless given)."""
    settings = settings or make_settings()
    with tempfile.TemporaryDirectory() as tmp:
        own = store is None
        st = store or make_store(Path(tmp))
        server = ImapServer(settings, st)
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(10):
                while not server.ready.is_set():
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
            yield Running(server, st, settings)
        finally:
            server.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await task
            if own:
                st.close()


class ThreadServer:
    """The server on its own loop in a thread: for blocking clients and hypothesis tests."""

    def __init__(self, settings: MsgstoreSettings | None = None, users: dict[str, str] | None = None) -> None:
        self.settings = settings or make_settings()
        self._tmp = tempfile.TemporaryDirectory()
        self.store = make_store(Path(self._tmp.name), users)
        self.server: ImapServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self.server = ImapServer(self.settings, self.store)
            await self.server.serve()

        try:
            asyncio.run(main())
        except BaseException as e:
            self._error = e

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.server is None or not self.server.ready.is_set():
            if self._error is not None:
                raise self._error
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self.server is not None:
            self._loop.call_soon_threadsafe(self.server.stop)
        self._thread.join(10)
        self.store.close()
        self._tmp.cleanup()


@dataclass
class Reply:
    """Everything a command got back: untagged responses and the tagged status."""

    untagged: list[Any]
    tagged: StatusResponse
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return self.tagged.status == "OK"

    @property
    def status(self) -> str:
        return self.tagged.status

    def of(self, cls: type) -> list[Any]:
        return [r for r in self.untagged if isinstance(r, cls)]


@dataclass
class Client:
    """`async with Client(host, port) as c: reply = await c.cmd("LIST \"\" *")`."""

    host: str
    port: int
    timeout_s: float = 10.0
    tags: Iterator[str] = field(default_factory=lambda: (f"a{i}" for i in itertools.count(1)))
    greeting: Any = None
    raw_log: bytearray = field(default_factory=bytearray)

    async def __aenter__(self) -> Client:
        async with asyncio.timeout(self.timeout_s):
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.parser = ResponseParser()
        self.pending: list[Any] = []
        self.greeting = await self.next_response()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.transport.abort()

    async def next_response(self) -> Any:
        """The next typed response (untagged ones that arrive at any time included)."""
        if self.pending:
            return self.pending.pop(0)
        async with asyncio.timeout(self.timeout_s):
            while True:
                ev = self.parser.next_event()
                if ev is not NEED_DATA:
                    return ev
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                self.raw_log += data
                self.parser.feed(data)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, text: str | bytes, *, literal: bytes | None = None) -> Reply:
        """Send `<tag> text` (+ a synchronizing literal appended if given), read to the tagged reply."""
        tag = next(self.tags)
        line = text.encode() if isinstance(text, str) else text
        start = len(self.raw_log)
        untagged: list[Any] = []
        if literal is not None:
            await self.send(tag.encode() + b" " + line + b" {%d}\r\n" % len(literal))
            while True:  # pushed untagged data (IDLE/NOTIFY) may come before the "+"
                r = await self.next_response()
                if isinstance(r, ContinuationRequest):
                    break
                if isinstance(r, StatusResponse) and r.tag == tag:
                    return Reply(untagged, r, bytes(self.raw_log[start:]))
                untagged.append(r)
            await self.send(literal + b"\r\n")
        else:
            await self.send(tag.encode() + b" " + line + b"\r\n")
        while True:
            r = await self.next_response()
            if isinstance(r, StatusResponse) and r.tag == tag:
                return Reply(untagged, r, bytes(self.raw_log[start:]))
            untagged.append(r)

    async def login(self, user: str = "alice", password: str | None = None) -> Reply:
        reply = await self.cmd(f'LOGIN {user} "{password or USERS[user]}"')
        assert reply.ok, reply
        return reply

    async def append(self, mailbox: str, message: bytes, flags: str = "") -> Reply:
        f = f" ({flags})" if flags else ""
        return await self.cmd(f'APPEND "{mailbox}"{f}', literal=message)

    async def wait_for(self, pred: Any, limit: int = 50) -> list[Any]:
        """Read responses until `pred(response)` is true; returns all read."""
        got: list[Any] = []
        for _ in range(limit):
            r = await self.next_response()
            got.append(r)
            if pred(r):
                return got
        raise AssertionError(f"condition not met in {got!r}")


def message(n: int = 1, subject: str | None = None, body: str = "hello") -> bytes:
    subject = subject or f"message {n}"
    return (
        f"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
        f"Subject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\n{body} {n}\r\n"
    ).encode()


class ErrorLog(logging.Handler):
    """Collects ERROR records: a server bug shows up as "command failed" / "session crashed"."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
