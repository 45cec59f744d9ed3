"""A deliberately tiny asyncio IMAP line client for infrastructure tests.

It sends exactly the bytes a test writes and returns the raw lines, so a test can see what went
over the wire (through the fault proxy, say). Real client tests use imaplib/imapclient/aioimaplib
or cpmsync's own client.
"""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import Self

__all__ = ["RawImap"]


class RawImap:
    """`async with RawImap(host, port) as c: lines = await c.command("NOOP")`."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.greeting = b""
        self.received = 0
        self.sent = 0
        self._tags = (f"t{i}" for i in itertools.count(1))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        async with asyncio.timeout(self.timeout_s):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self.greeting = await self.readline()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.transport.abort()

    async def readline(self) -> bytes:
        """One line (b"" at EOF); literals are not special-cased."""
        assert self._reader is not None
        async with asyncio.timeout(self.timeout_s):
            line = await self._reader.readline()
        self.received += len(line)
        return line

    async def read_all(self) -> bytes:
        """Everything until the server (or the proxy) closes the connection."""
        assert self._reader is not None
        chunks = []
        try:
            async with asyncio.timeout(self.timeout_s):
                while chunk := await self._reader.read(65536):
                    chunks.append(chunk)
        except ConnectionError:
            pass
        data = b"".join(chunks)
        self.received += len(data)
        return data

    async def unsolicited(self, seconds: float) -> list[bytes]:
        """The lines the server sends on its own within `seconds` (no command running)."""
        assert self._reader is not None
        lines: list[bytes] = []
        try:
            async with asyncio.timeout(seconds):
                while line := await self._reader.readline():
                    lines.append(line)
        except TimeoutError:
            pass
        self.received += sum(map(len, lines))
        return lines

    async def send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        self.sent += len(data)
        await self._writer.drain()

    async def command(self, text: str) -> list[bytes]:
        """Send `<tag> text` and return every line up to and including the tagged reply."""
        tag = next(self._tags)
        await self.send(f"{tag} {text}\r\n".encode())
        lines: list[bytes] = []
        while True:
            line = await self.readline()
            if not line:
                raise ConnectionError(f"closed before the reply to {text.split()[0]}; got {lines!r}")
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    async def login(self, user: str, password: str) -> list[bytes]:
        lines = await self.command(f'LOGIN "{user}" "{password}"')
        if not lines[-1].split(b" ", 2)[1] == b"OK":
            raise PermissionError(lines[-1].decode())
        return lines
