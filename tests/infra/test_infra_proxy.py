"""The fault proxy in front of a real Dovecot: it forwards faithfully, counts, and injects faults.

The proxy exists because no real server produces malformed lines or cuts a connection on demand;
these tests show each fault arrives exactly as the tests of other components will assume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.support import DovecotServer, FaultProxy, LinkProfile, MosquittoBroker
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


async def test_link_delays_each_chunk_by_half_the_rtt_and_keeps_several_in_flight(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    px = await fault_proxy_factory(dovecot.host, dovecot.port, link=LinkProfile(rtt_ms=1000))
    async with RawImap(px.host, px.port, timeout_s=30) as c:
        await c.login("alice", dovecot.password("alice"))
        px.reset_counters()
        await c.send(b"a1 NOOP\r\n")
        await asyncio.sleep(0.02)  # two separate chunks on the link; not a timing assertion
        await c.send(b"a2 NOOP\r\n")
        lines = [await c.readline() for _ in range(2)]
        assert [line.split()[0] for line in lines] == [b"a1", b"a2"]
    ups = [e for e in px.trace if e.direction == "up"]
    downs = [e for e in px.trace if e.direction == "down"]
    assert [e.nbytes for e in ups] == [len(b"a1 NOOP\r\n")] * 2
    assert sum(e.nbytes for e in downs) == sum(map(len, lines))
    for e in px.trace:
        assert e.taken_s is not None and e.t_s - e.taken_s >= 0.5  # one way = RTT/2, never less
    # A link, not a queue of round trips: the second command was on the wire before the first
    # arrived, and each arrived half an RTT after the proxy took it, not after the one before.
    assert ups[1].taken_s is not None and ups[1].taken_s < ups[0].t_s


async def test_link_caps_bandwidth_per_direction_and_loses_no_byte(
    dovecot: DovecotServer, fault_proxy_factory: ProxyFactory
) -> None:
    body = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 4000
    link = LinkProfile(rtt_ms=20, down_mbps=8.0)  # 1 MB/s down, uncapped up
    px = await fault_proxy_factory(dovecot.host, dovecot.port, link=link)
    async with RawImap(px.host, px.port, timeout_s=30) as c:
        await c.login("alice", dovecot.password("alice"))
        await c.command("CREATE Big")
        await c.send(f"a0 APPEND Big {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
        assert (await c.readline()).startswith(b"a0 OK")
        await c.command("SELECT Big")
        px.reset_counters()
        lines = await c.command("FETCH 1 BODY.PEEK[]")
        got = b"".join(lines)
        assert body in got  # every line, whole
        await px.wait_bytes("down", len(got))
    downs = [e for e in px.trace if e.direction == "down"]
    assert sum(e.nbytes for e in downs) == len(got)
    assert max(e.nbytes for e in downs) <= link.slice_bytes
    # Never faster than the cap: by each delivery, at most rate x (time since the proxy took the
    # first byte of the answer) had arrived. Deliveries only come later on a busy machine.
    first = downs[0].taken_s
    assert first is not None
    delivered = 0
    for e in downs:
        delivered += e.nbytes
        assert delivered - downs[0].nbytes <= 1e6 * (e.t_s - first) + 1
    assert link.bound_s(0, len(got)) >= 0.3


def test_link_profile_takes_the_simulators_lte_figures() -> None:
    from cpmsync.simulator.radio import load_profile

    lte = LinkProfile.radio("lte")
    t = load_profile("lte").transfer
    assert (lte.rtt_ms, lte.up_mbps, lte.down_mbps) == (t.rtt_ms, t.uplink_mbps, t.downlink_mbps)
    # 1 MB down at 12.74 Mbit/s, plus 3 round trips of 70 ms.
    assert lte.bound_s(10_000, 1_000_000, round_trips=3) == 8e6 / (t.downlink_mbps * 1e6) + 0.21


def test_threaded_proxy_serves_blocking_clients(dovecot: DovecotServer) -> None:
    import imaplib

    from tests.support import ThreadedFaultProxy

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
