"""Limits and bad input: every limit is a named setting and holds over the wire, and hitting
one leaves the connection (or at least every other connection) usable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from server_testlib import Client, make_settings, message, running_server

from cpmsync.imap import ContinuationRequest, StatusResponse


async def test_line_too_long_is_bad_and_connection_survives() -> None:
    async with running_server(make_settings(limits={"max_line_bytes": 1024})) as srv, srv.client() as c:
        await c.login()
        reply = await c.cmd(f'LIST "" "{"x" * 4000}"')
        assert reply.status == "BAD" or (await c.next_response()).status == "BAD"
        assert (await c.cmd("NOOP")).ok


async def test_literal_too_big_is_refused_without_continuation() -> None:
    async with running_server(make_settings(limits={"max_literal_bytes": 1024})) as srv, srv.client() as c:
        await c.login()
        await c.send(b"t1 APPEND INBOX {5000}\r\n")
        r = await c.next_response()
        assert not isinstance(r, ContinuationRequest)
        assert isinstance(r, StatusResponse) and r.tag == "t1" and r.status in ("NO", "BAD")
        assert (await c.cmd("NOOP")).ok
        assert (await c.append("INBOX", message(1))).ok  # a small one still goes in


async def test_connections_per_user() -> None:
    async with running_server(make_settings(limits={"max_connections_per_user": 2})) as srv:
        async with srv.client() as a, srv.client() as b, srv.client() as c:
            await a.login()
            await b.login()
            reply = await c.cmd('LOGIN alice "alice-pw"')
            assert reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "LIMIT"
            await c.login("bob")  # another user is not affected
            await a.cmd("LOGOUT")
            async with srv.client() as d:
                for _ in range(50):  # the server notices a's logout right after it answers
                    if (await d.cmd('LOGIN alice "alice-pw"')).ok:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("slot not released")


async def test_connections_per_address() -> None:
    async with running_server(make_settings(limits={"max_connections_per_address": 2})) as srv:
        async with srv.client() as a, srv.client() as b:
            c = Client(srv.host, srv.port)
            async with c:
                assert isinstance(c.greeting, StatusResponse) and c.greeting.status == "BYE"
            assert (await a.cmd("NOOP")).ok and (await b.cmd("NOOP")).ok


async def test_commands_per_second_throttles_not_fails() -> None:
    async with running_server(make_settings(limits={"max_commands_per_s": 20})) as srv, srv.client() as c:
        start = time.monotonic()
        for _ in range(30):
            assert (await c.cmd("NOOP")).ok
        assert time.monotonic() - start >= (30 - 20) / 20 * 0.9  # lower bound of the token bucket


async def test_auth_failure_is_delayed() -> None:
    async with running_server(make_settings(limits={"auth_failure_delay_ms": 300})) as srv, srv.client() as c:
        start = time.monotonic()
        assert (await c.cmd('LOGIN alice "nope"')).status == "NO"
        assert time.monotonic() - start >= 0.3
        await c.login()


async def test_idle_timeout_logs_out() -> None:
    settings = make_settings()
    settings.server.idle_timeout_s = 1  # below the RFC minimum on purpose (the setting validates >= 1800)
    async with running_server(settings) as srv, srv.client() as c:
        await c.login()
        r = await c.next_response()
        assert isinstance(r, StatusResponse) and r.status == "BYE"


async def test_every_ok_change_is_committed_before_the_tagged_ok() -> None:
    async with running_server() as srv, srv.client() as c:
        await c.login()
        for i in range(20):
            assert (await c.append("INBOX", message(i))).ok
            # the store is read directly, right after the OK: nothing may be pending
            assert srv.store.status("alice", "INBOX").messages == i + 1


async def test_client_vanishing_mid_literal_does_not_disturb_others() -> None:
    async with running_server() as srv, srv.client() as good:
        await good.login()
        async with srv.session() as bad:
            await bad.send(b"x APPEND INBOX {100000}\r\n")
            await bad.next_response()
            await bad.send(b"partial data")
        assert (await good.append("INBOX", message(1))).ok
        assert srv.store.status("alice", "INBOX").messages == 1


async def test_huge_ranges_cost_what_the_mailbox_holds() -> None:
    from cpmsync.imap import FetchData, SearchData

    async with running_server() as srv, srv.client() as c:
        await c.login()
        for i in range(3):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        assert len((await c.cmd("UID FETCH 1:4294967295 FLAGS")).of(FetchData)) == 3
        assert len((await c.cmd("UID STORE 2:4294967295 +FLAGS.SILENT (\\Seen)")).untagged) == 0
        assert (await c.cmd("SEARCH 1:4294967295")).of(SearchData)[0].ids == (1, 2, 3)
        assert (await c.cmd("UID SEARCH UID 4294967295:2")).of(SearchData)[0].ids == (2, 3)
        assert (await c.cmd("FETCH 4294967295:* UID")).of(FetchData)[0].uid == 3
        assert (await c.cmd("UID COPY 1:4294967295 INBOX")).ok


async def test_fetching_more_bytes_than_one_batch_holds() -> None:
    from cpmsync.imap import FetchData

    async with running_server() as srv, srv.client() as c:
        await c.login()
        big = message(1, body="z" * (3 * 1024 * 1024))
        for _ in range(4):  # 12 MiB: more than one 8 MiB store read
            srv.store.append("alice", "INBOX", big)
        await c.cmd("SELECT INBOX")
        got = (await c.cmd("FETCH 1:* (RFC822.SIZE BODY.PEEK[])")).of(FetchData)
        assert [f.seq for f in got] == [1, 2, 3, 4]
        assert all(f.body() == big for f in got)


def _flood_without_reading(port: int, count: int) -> tuple[socket.socket, bytes, int]:
    """Log in, then pipeline `count` NOOPs without reading a reply until sending stalls (the
    client's small receive buffer is full, and the server has stopped taking commands)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(30)
    got = b""
    sock.sendall(b"l LOGIN alice alice-pw\r\n")
    while b"l OK" not in got:
        got += sock.recv(4096)
    data = b"".join(b"n%d NOOP\r\n" % i for i in range(count))
    sent, stalled_since = 0, time.monotonic()
    sock.setblocking(False)
    while sent < len(data) and time.monotonic() - stalled_since < 2:  # no progress for 2 s: stalled
        try:
            sent += sock.send(data[sent : sent + 65536])
            stalled_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    return sock, data, sent


def _read_all_replies(sock: socket.socket, data: bytes, sent: int, count: int) -> list[int]:
    """Read every tagged reply (sending the rest of the NOOPs as the server takes them)."""
    tags: list[int] = []
    buf = b""
    sock.setblocking(True)
    sock.settimeout(0.05)
    while not tags or tags[-1] != count - 1:
        if sent < len(data):
            with contextlib.suppress(TimeoutError, BlockingIOError):
                sent += sock.send(data[sent : sent + 65536])
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        assert chunk, "server closed the connection"
        buf += chunk
        lines = buf.split(b"\r\n")
        buf = lines.pop()
        tags += [int(line.split(b" ", 1)[0][1:]) for line in lines if line.startswith(b"n")]
        assert all(line.endswith(b"OK NOOP completed") for line in lines if line.startswith(b"n"))
    return tags


async def test_a_client_that_pipelines_without_reading_is_not_read_ahead_of() -> None:
    """300,000 pipelined NOOPs (4 MB) from a client that reads nothing: the server stops reading
    its commands once its replies back up, so what it holds for the client stays small (not the
    megabytes of commands the kernel lets it read); once the client reads, every NOOP is answered,
    in order. (Read-ahead without a bound holds 1-2 MB here.)"""
    count = 300_000
    async with running_server() as srv:
        sock, data, sent = await asyncio.to_thread(_flood_without_reading, srv.port, count)
        try:
            held_while_stalled = srv.server.held_bytes_peak
            tags = await asyncio.to_thread(_read_all_replies, sock, data, sent, count)
        finally:
            sock.close()
        held = srv.server.held_bytes_peak
    assert tags == list(range(count))
    # what the server held at once is a few batches of 64 KiB
    assert held_while_stalled <= 512 * 1024 and held <= 512 * 1024, (held_while_stalled, held)
