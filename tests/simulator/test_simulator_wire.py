"""TCP/IP, TLS, delayed-ACK and COMPRESS=DEFLATE arithmetic below IMAP."""

from __future__ import annotations

import zlib

import pytest

from cpmsync.simulator.wire import WireConfig, WireCounter, tls_handshake_flights


def test_ipv4_with_timestamps_costs_52_bytes_per_segment_and_mss_1448() -> None:
    w = WireCounter(WireConfig(tls="none"))
    w.send("down", b"x" * 3000)  # ceil(3000 / 1448) = 3 segments
    c = w.finish()
    assert c.segments_down == 3
    assert c.wire_down == 3000 + 3 * 52
    # receiver ACKs the 2nd segment at once; the odd 3rd waits and, with no reply, costs a pure ACK
    assert c.pure_acks_up == 2 and c.wire_up == 2 * 52


def test_ipv6_headers_are_72_bytes() -> None:
    cfg = WireConfig(ipv6=True, tls="none")
    assert cfg.header_bytes == 72 and cfg.mss_bytes == 1428
    w = WireCounter(cfg)
    w.send("up", b"y" * 1428)
    assert w.finish().wire_up == 1428 + 72


def test_reply_carries_the_delayed_ack() -> None:
    w = WireCounter(WireConfig(tls="none"))
    w.send("up", b"a1 NOOP\r\n")
    w.send("down", b"a1 OK NOOP completed.\r\n")
    c = w.finish()
    assert c.pure_acks_down == 0  # the server's reply acknowledged the command
    assert c.pure_acks_up == 1  # nothing follows the reply: the client's delayed ACK fires alone
    assert c.wire_up == 9 + 52 + 52 and c.wire_down == 23 + 52


@pytest.mark.parametrize(("tls", "per_record"), [("1.3", 22), ("1.2", 29)])
def test_tls_records_cost_their_overhead_per_16_kib(tls: str, per_record: int) -> None:
    w = WireCounter(WireConfig(tls=tls))  # type: ignore[arg-type]
    w.send("down", b"z" * 40_000)  # 3 records of at most 16384 B
    c = w.finish()
    assert c.tls_down == 40_000 + 3 * per_record
    segs = -(-(40_000 + 3 * per_record) // 1448)
    assert c.segments_down == segs and c.wire_down == c.tls_down + segs * 52


def test_connect_counts_syn_handshake_and_a_real_tls_handshake() -> None:
    flights = tls_handshake_flights("1.3")
    assert flights[0][0] == "up" and flights[1][0] == "down"
    assert 150 < flights[0][1] < 600  # ClientHello
    assert flights[1][1] > 800  # ServerHello .. Finished with an RSA-2048 certificate
    w = WireCounter()
    w.connect()
    c = w.finish()
    assert c.tls_up + c.tls_down == sum(n for _, n in flights)
    assert c.wire_up >= 60 + 52 + sum(n for d, n in flights if d == "up")


def test_deflate_shrinks_a_list_status_stream_and_shares_its_dictionary_across_flights() -> None:
    lines = b"".join(
        b'* LIST () "/" "tel:+1514555%04d"\r\n* STATUS "tel:+1514555%04d" (MESSAGES %d UIDNEXT %d '
        b"UIDVALIDITY 17 UNSEEN 0 HIGHESTMODSEQ %d)\r\n" % (i, i, i % 50, i % 50 + 1, 821100000 + i)
        for i in range(2000)
    )
    plain = WireCounter()
    plain.send("down", lines)
    comp = WireCounter()
    comp.start_compression()
    comp.send("down", lines)
    first = comp.count.stream_down
    comp.send("down", lines)
    second = comp.count.stream_down - first
    assert comp.count.imap_down == 2 * len(lines)
    assert first < len(lines) / 3
    assert second < first  # the same stream keeps its window: repeated data is cheaper
    # the counted stream is exactly what a raw-deflate peer inflates back to the IMAP bytes
    d = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    blob = d.compress(lines) + d.flush(zlib.Z_SYNC_FLUSH)
    assert len(blob) == first
    assert zlib.decompressobj(-15).decompress(blob) == lines
    assert plain.finish().wire_down > comp.finish().wire_down
