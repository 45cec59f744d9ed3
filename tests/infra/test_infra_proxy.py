"""The fault proxy in front of a real Dovecot: it forwards faithfully, counts, and injects faults.

The proxy exists because no real server produces malformed lines or cuts a connection on demand;
these tests show each fault arrives exactly as the tests of other components will assume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cpmsync.testing import DovecotServer, FaultProxy, MosquittoBroker
from tests.support.raw_imap import RawImap

ProxyFactory = Callable[..., Awaitable[FaultProxy]]


async def test_forwards_a_session_and_counts_every_byte_each_way(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        assert c.greeting.startswith(b"* OK")
        await c.login("alice", dovecot.password("alice"))
        lines = await c.command("CAPABILITY")
        assert b"QRESYNC" in lines[0]
        lines = await c.command("LOGOUT")
        assert lines[-1].split()[1] == b"OK"
        await px.wait_bytes("down", c.received)
        assert px.bytes_up == c.sent
        assert px.bytes_down == c.received
    assert sum(e.nbytes for e in px.trace if e.direction == "up") == px.bytes_up
    assert sum(e.nbytes for e in px.trace if e.direction == "down") == px.bytes_down
    assert [e.t_s for e in px.trace] == sorted(e.t_s for e in px.trace)
    assert {e.conn for e in px.trace} == {1}


async def test_cut_after_n_server_bytes_delivers_exactly_n_then_closes(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        px.cut_after(down=10)
        await c.send(b"t1 CAPABILITY\r\n")
        rest = await c.read_all()
        assert len(rest) == 10
        assert rest == b"* CAPABILI"
    assert px.cut_done.is_set()
    # The server is untouched: a new connection through the proxy works again.
    async with RawImap(px.host, px.port) as c:
        assert c.greeting.startswith(b"* OK")


async def test_cut_now_ends_live_connections_and_leaves_the_server_usable(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))
        await px.cut(rst=True)
        assert px.active_connections == 0
        assert await c.read_all() == b""
        with pytest.raises(ConnectionError):
            await c.command("NOOP")
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))


async def test_cut_also_ends_a_paused_link(dovecot: DovecotServer, fault_proxy_factory: ProxyFactory) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))
        px.pause()
        await c.send(b"t9 NOOP\r\n")  # held in the proxy
        await asyncio.sleep(0.2)  # let the proxy read it (held bytes are not counted: nothing to await)
        await px.cut()
        assert px.active_connections == 0  # its pumps were stuck in pause(): the link stayed registered
        assert await c.read_all() == b""
        px.resume()


async def test_replaces_the_next_matching_server_line(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))
        await c.command("CREATE Foo")
        px.replace_next_down_line(b"* STATUS Foo (MESSAGES (((\r\n", startswith=b"* STATUS")
        lines = await c.command('LIST "" "*" RETURN (STATUS (MESSAGES))')
        statuses = [line for line in lines if line.startswith(b"* STATUS")]
        assert statuses[0] == b"* STATUS Foo (MESSAGES (((\r\n"
        assert all(b"(((" not in line for line in statuses[1:])
        assert lines[-1].split()[1] == b"OK"
        assert px.replaced.is_set()
        # One-shot: the next listing is genuine again.
        lines = await c.command('LIST "" "*" RETURN (STATUS (MESSAGES))')
        assert all(b"(((" not in line for line in lines)


async def test_injected_bytes_reach_the_client_as_if_from_the_server(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))
        px.inject_down(b"* 99999999999999999999 EXISTS\r\n")
        assert await c.readline() == b"* 99999999999999999999 EXISTS\r\n"
        lines = await c.command("NOOP")
        assert lines[-1].split()[1] == b"OK"
    assert any(e.injected for e in px.trace)


async def test_pause_holds_bytes_and_resume_delivers_them(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    async with RawImap(px.host, px.port) as c:
        await c.login("alice", dovecot.password("alice"))
        up_before = px.bytes_up
        px.pause()
        reply = asyncio.create_task(c.command("NOOP"))
        await asyncio.sleep(0.05)  # gives the proxy the chance to (wrongly) forward; not a timing assertion
        assert px.bytes_up == up_before
        assert not reply.done()
        px.resume()
        lines = await reply
        assert lines[-1].split()[1] == b"OK"


async def test_refusing_closes_new_connections_at_once(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    px.refuse()
    reader, writer = await asyncio.open_connection(px.host, px.port)
    try:
        async with asyncio.timeout(10):
            assert await reader.read() == b""
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()
    px.refuse(False)
    async with RawImap(px.host, px.port) as c:
        assert c.greeting.startswith(b"* OK")


async def test_proxies_mqtt_to_a_real_broker(
    mqtt_broker: MosquittoBroker, fault_proxy_factory: ProxyFactory
) -> None:
    import aiomqtt

    px = await fault_proxy_factory(mqtt_broker.host, mqtt_broker.port)
    async with aiomqtt.Client(px.host, px.port, identifier="via-proxy") as client:
        await client.publish("t/x", b"hello", qos=1)
    assert px.bytes_up > 0 and px.bytes_down > 0
    assert px.connections_total == 1


async def test_delay_holds_each_chunk_at_least_that_long(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port)
    px.delay_ms = 30
    async with RawImap(px.host, px.port) as c:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await c.command("NOOP")
        # A lower bound only: the command and its reply each waited in the proxy.
        assert loop.time() - started >= 2 * 0.030


def test_threaded_proxy_serves_blocking_clients(dovecot: DovecotServer) -> None:
    import imaplib

    from cpmsync.testing import ThreadedFaultProxy

    with ThreadedFaultProxy(dovecot.host, dovecot.port) as px:
        m = imaplib.IMAP4(px.host, px.port, timeout=10)
        m.login("alice", dovecot.password("alice"))
        m.logout()
        assert px.bytes_up > 0 and px.bytes_down > 0
        assert sum(e.nbytes for e in px.trace) == px.bytes_up + px.bytes_down
        px.reset_counters()
        m = imaplib.IMAP4(px.host, px.port, timeout=10)
        px.cut()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            m.login("alice", dovecot.password("alice"))
