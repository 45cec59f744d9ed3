"""Round trips of a daemon connect on each peer: every one is 50-70 ms on a phone's radio, paid at
each reconnect. After the greeting, the daemon's setup takes two: AUTHENTICATE (whose OK carries
the authenticated capabilities on both peers), then ENABLE and COMPRESS in one write (RFC 4978:
COMPRESS last, nothing after it until its OK).

The fault proxy counts the client's writes and, for the server that sends no capabilities with
its OK (RFC 3501 allows both), removes them from the line: no real peer here omits them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon_sync_helpers import daemon_settings, other_client

from cpmsync.daemon.imap_client import ImapClient
from cpmsync.daemon.service import setup
from tests.support import FaultProxy
from tests.support.peers import ImapPeer


def _flights(px: FaultProxy) -> int:
    """Client writes answered before the next: runs of up chunks with no server bytes between."""
    flights, last = 0, "down"
    for e in px.trace:
        if e.direction == "up" and last == "down":
            flights += 1
        last = e.direction
    return flights


async def _connect(p: ImapPeer, tmp: Path, proxy_factory: Any, *, strip_capability: bool) -> None:
    c = other_client(p.host, p.port, p.user, p.password)
    c.create_folder("chat")
    c.logout()
    px: FaultProxy = await proxy_factory(p.host, p.port)
    settings = daemon_settings(px.host, px.port, p.user, p.password, 1883, tmp)  # COMPRESS on
    async with ImapClient(px.host, px.port, tls="none") as imap:
        if strip_capability:  # the AUTHENTICATE OK, without its [CAPABILITY ...]
            tag = f"C{imap._tagno + (1 if imap.capabilities else 2)} OK".encode()
            px.replace_next_down_line(tag + b" Logged in\r\n", startswith=tag)
        px.reset_counters()
        await setup(imap, settings)
        flights = _flights(px)
        assert imap.compressed and "QRESYNC" in imap.enabled
        assert imap.has("QRESYNC") and imap.has("LIST-STATUS")  # the authenticated capabilities
        folders, _status = await imap.list_folders()  # deflated both ways from here
        assert "chat" in {f.name for f in folders}
    assert px.replaced.is_set() == strip_capability
    assert flights == (3 if strip_capability else 2)


async def test_setup_takes_two_round_trips_after_the_greeting(
    imap_peer: ImapPeer, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    await _connect(imap_peer, tmp_path, fault_proxy_factory, strip_capability=False)


async def test_without_capabilities_in_the_login_ok_the_daemon_asks_for_them(
    imap_peer: ImapPeer, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    await _connect(imap_peer, tmp_path, fault_proxy_factory, strip_capability=True)
