"""RFC 4978 COMPRESS=DEFLATE: raw deflate both ways, flushed per response batch."""

from __future__ import annotations

import asyncio
import zlib

from server_testlib import Running, message

from cpmsync.imap import NEED_DATA, FetchData, ListData, ResponseParser, StatusResponse


class _Deflated:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.parser = ResponseParser()
        self.wire_in = 0

    async def cmd(self, tag: str, text: str) -> list[object]:
        data = self.deflate.compress(f"{tag} {text}\r\n".encode()) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)
        out: list[object] = []
        async with asyncio.timeout(10):
            while True:
                ev = self.parser.next_event()
                if ev is NEED_DATA:
                    chunk = await self.reader.read(65536)
                    assert chunk, "closed"
                    self.wire_in += len(chunk)
                    self.parser.feed(self.inflate.decompress(chunk))
                    continue
                out.append(ev)
                if isinstance(ev, StatusResponse) and ev.tag == tag:
                    return out


async def test_compress_deflate_round_trip(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(20):
            await c.cmd(f"CREATE folder-{i:03}")
        await c.append("INBOX", message(1, body="x" * 5000))
        reply = await c.cmd("COMPRESS DEFLATE")
        assert reply.ok
        z = _Deflated(c.reader, c.writer)
        got = await z.cmd("z1", 'LIST "" *')
        assert len([r for r in got if isinstance(r, ListData)]) == 21
        await z.cmd("z2", "SELECT INBOX")
        got = await z.cmd("z3", "FETCH 1 BODY.PEEK[]")
        f = next(r for r in got if isinstance(r, FetchData))
        assert f.body() == message(1, body="x" * 5000)
        assert z.wire_in < 5000  # the body really was compressed
        got = await z.cmd("z4", "COMPRESS DEFLATE")
        last = got[-1]
        assert isinstance(last, StatusResponse) and last.status == "NO"
        assert last.code and last.code.name == "COMPRESSIONACTIVE"


async def test_compress_before_login_is_bad(srv: Running) -> None:
    async with srv.client() as c:
        assert (await c.cmd("COMPRESS DEFLATE")).status == "BAD"
        assert (await c.cmd("NOOP")).ok


async def test_corrupt_deflate_stream_closes_only_that_connection(srv: Running) -> None:
    async with srv.client() as c, srv.client() as other:
        await c.login()
        assert (await c.cmd("COMPRESS DEFLATE")).ok
        await c.send(b"\xff\xff\xff\xff not deflate at all")
        assert await c.reader.read() in (b"",)
        await other.login()
        assert (await other.cmd("NOOP")).ok


async def test_deflate_bomb_is_refused_by_the_line_limit(srv: Running) -> None:
    async with srv.client() as c, srv.client() as other:
        await c.login()
        assert (await c.cmd("COMPRESS DEFLATE")).ok
        z = _Deflated(c.reader, c.writer)
        bomb = z.deflate.compress(b"a NOOP " + b"A" * 50_000_000 + b"\r\n")
        bomb += z.deflate.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 100_000
        c.writer.write(bomb)
        got = await z.cmd("z1", "NOOP")  # the bomb line is refused, the connection goes on
        assert isinstance(got[-1], StatusResponse) and got[-1].status == "OK"
        assert any(isinstance(r, StatusResponse) and r.status == "BAD" for r in got[:-1])
        await other.login()
        assert (await other.cmd("NOOP")).ok
