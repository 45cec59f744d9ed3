"""Bytes of a catch-up sync come from the codec's real commands and responses."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cpmsync.imap as imap
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.account import make_account
from cpmsync.simulator.catchup import STATUS_ITEMS, STRATEGIES, ImapSession, predict_catchup_bytes
from cpmsync.simulator.wire import WireConfig


def _shape(n: int) -> tuple[list[str], dict[str, dict[str, int]]]:
    acct = make_account(n, seed=4)
    return list(acct.folders), {k: f.status_items() for k, f in acct.folders.items()}


def test_list_changedsince_bytes_are_the_cr_exchange_for_the_changed_folders_only() -> None:
    names, statuses = _shape(500)
    changed = names[10:13]
    got = predict_catchup_bytes(
        names, statuses, changed, DiscoveryStrategy.LIST_CHANGEDSINCE, False, last_modseq=5, connect=False
    )
    cmd = imap.serialize_command(
        imap.ListCommand(tag="a1", reference="", patterns=("*",), changedsince=5, return_status=STATUS_ITEMS)
    )
    assert cmd.startswith(b'a1 LIST (CHANGEDSINCE (5)) "" * RETURN (STATUS (')
    expected_down = sum(
        len(imap.serialize_response(imap.ListData(attributes=(), delimiter="/", name=n)))
        + len(imap.serialize_response(imap.StatusData(mailbox=n, items=dict(statuses[n]))))
        for n in changed
    ) + len(imap.serialize_response(imap.StatusResponse(tag="a1", status="OK", text="List completed.")))
    assert got.imap_up == len(cmd)
    assert got.imap_down == expected_down


def test_list_status_grows_with_folders_and_changedsince_does_not() -> None:
    small = _shape(100)
    big = _shape(2000)
    f = {
        (n, s): predict_catchup_bytes(*shape, shape[0][:3], s, False, connect=False).imap_down
        for n, shape in (("small", small), ("big", big))
        for s in STRATEGIES
    }
    assert f[("big", DiscoveryStrategy.LIST_STATUS)] > 15 * f[("small", DiscoveryStrategy.LIST_STATUS)]
    assert f[("big", DiscoveryStrategy.LIST_CHANGEDSINCE)] == pytest.approx(
        f[("small", DiscoveryStrategy.LIST_CHANGEDSINCE)], rel=0.3
    )
    assert f[("big", DiscoveryStrategy.LIST_CHANGEDSINCE)] < f[("big", DiscoveryStrategy.LIST_STATUS)] / 100
    # one STATUS per folder adds a command and a tagged OK per folder on top of LIST
    assert f[("big", DiscoveryStrategy.LIST_STATUS_PER_FOLDER)] > f[("big", DiscoveryStrategy.LIST_STATUS)]


def test_deflate_reduces_the_bytes_of_a_big_list_status() -> None:
    names, statuses = _shape(3000)
    plain = predict_catchup_bytes(names, statuses, [], DiscoveryStrategy.LIST_STATUS, False)
    comp = predict_catchup_bytes(names, statuses, [], DiscoveryStrategy.LIST_STATUS, True)
    assert comp.imap_down > plain.imap_down  # COMPRESS command and its OK add IMAP bytes...
    assert comp.wire_down < plain.wire_down / 3  # ...and the compressed stream is far smaller


def test_compressed_stream_inflates_back_to_the_imap_bytes() -> None:
    names, statuses = _shape(200)
    s = ImapSession(WireConfig(tls="none"))
    s.counter.start_compression()
    assert s.counter._deflaters is not None
    recorded: list[bytes] = []
    orig = s.counter._deflaters["down"]

    class Tap:
        def compress(self, data: bytes) -> bytes:
            out = orig.compress(data)
            recorded.append(out)
            return out

        def flush(self, mode: int) -> bytes:
            out = orig.flush(mode)
            recorded.append(out)
            return out

    s.counter._deflaters["down"] = Tap()  # type: ignore[assignment]
    from cpmsync.simulator.account import Folder

    folders = {n: Folder(n, 1, 1, 0, 0, int(statuses[n]["HIGHESTMODSEQ"])) for n in names}
    s.discover(DiscoveryStrategy.LIST_STATUS, folders, [], 0)
    c = s.finish()
    plain = zlib.decompressobj(-15).decompress(b"".join(recorded))
    assert len(plain) == c.imap_down
    assert plain.startswith(b'* LIST () "/" ')
    assert plain.endswith(b" OK List completed.\r\n")


def test_connect_includes_tcp_tls_greeting_login_and_enable() -> None:
    names, statuses = _shape(50)
    with_conn = predict_catchup_bytes(names, statuses, [], DiscoveryStrategy.LIST_CHANGEDSINCE, False)
    without = predict_catchup_bytes(
        names, statuses, [], DiscoveryStrategy.LIST_CHANGEDSINCE, False, connect=False
    )
    assert with_conn.wire_up - without.wire_up > 60 + 52 + 200  # SYN, ACK, ClientHello at least
    assert with_conn.wire_down - without.wire_down > 1000  # server's TLS flight with a certificate


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300), k=st.integers(0, 20), compress=st.booleans(), strategy=st.sampled_from(STRATEGIES)
)
def test_byte_counts_are_consistent_across_layers(n: int, k: int, compress: bool, strategy: str) -> None:
    names, statuses = _shape(n)
    c = predict_catchup_bytes(names, statuses, names[:k], strategy, compress)  # type: ignore[arg-type]
    for d in ("up", "down"):
        imap_b, stream, tls, wire = (getattr(c, f"{x}_{d}") for x in ("imap", "stream", "tls", "wire"))
        assert wire > tls > 0 and imap_b > 0
        if not compress:
            assert stream == imap_b
    assert sum(n for _, n in c.flights) == c.wire_up + c.wire_down
