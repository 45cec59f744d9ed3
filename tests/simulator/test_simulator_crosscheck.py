"""Predicted catch-up bytes against what a real IMAP server (Dovecot) puts on the socket.

The daemon/msgstore cross-check (LIST-CHANGEDSINCE) comes when both exist; Dovecot has no
LIST-CHANGEDSINCE, so here the two strategies it does serve are checked: LIST-STATUS and
LIST + STATUS per folder. The account shape (names, LIST attributes, STATUS values) is read
from the server first; the prediction must then match a second, measured exchange within 5 %.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

import cpmsync.imap as imap
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.catchup import STATUS_ITEMS, predict_catchup_bytes
from tests.support import seed_dovecot


class RawClient:
    """A blocking plain-TCP IMAP client that counts every byte it sends and receives."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.parser = imap.ResponseParser(max_line_bytes=1 << 20)
        self.sent = 0
        self.received = 0
        self._tag = 0
        self.read_until(None)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def read_until(self, tag: str | None, count: int = 1) -> list[Any]:
        """Responses up to the `count`-th tagged reply for `tag` (or the greeting)."""
        out: list[Any] = []
        seen = 0
        while True:
            for ev in self.parser.events():
                out.append(ev)
                if isinstance(ev, imap.StatusResponse) and (tag is None or ev.tag == tag):
                    seen += 1
                    if tag is None or seen == count:
                        return out
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.received += len(data)
            self.parser.feed(data)

    def tag(self) -> str:
        self._tag += 1
        return f"t{self._tag}"


def _shape(c: RawClient) -> tuple[list[str], dict[str, tuple[str, ...]], dict[str, dict[str, int]]]:
    t = c.tag()
    c.send(
        imap.serialize_command(
            imap.ListCommand(tag=t, reference="", patterns=("*",), return_status=STATUS_ITEMS)
        )
    )
    names: list[str] = []
    attrs: dict[str, tuple[str, ...]] = {}
    statuses: dict[str, dict[str, int]] = {}
    for r in c.read_until(t):
        if isinstance(r, imap.ListData):
            names.append(r.name)
            attrs[r.name] = r.attributes
        elif isinstance(r, imap.StatusData):
            statuses[r.mailbox] = {k: int(v) for k, v in r.items.items()}
    return names, attrs, statuses


@pytest.mark.parametrize("folders", [200, 2000])
def test_predicted_list_status_bytes_match_dovecot_within_5_percent(
    dovecot_account: Any, folders: int
) -> None:
    acct = dovecot_account
    seed_dovecot(acct.server, acct.user, folders=folders, messages_per_folder=1)
    c = RawClient(acct.host, acct.port)
    t = c.tag()
    c.send(imap.serialize_command(imap.LoginCommand(tag=t, username=acct.user, password=acct.password)))
    c.read_until(t)
    names, attrs, statuses = _shape(c)
    assert len(names) >= folders
    # a plain LIST carries CHILDREN attributes (\\HasNoChildren) that LIST-STATUS leaves out
    t = c.tag()
    c.send(imap.serialize_command(imap.ListCommand(tag=t, reference="", patterns=("*",))))
    plain_attrs = {r.name: r.attributes for r in c.read_until(t) if isinstance(r, imap.ListData)}

    for strategy in (DiscoveryStrategy.LIST_STATUS, DiscoveryStrategy.LIST_STATUS_PER_FOLDER):
        up0, down0 = c.sent, c.received
        if strategy == DiscoveryStrategy.LIST_STATUS:
            t = c.tag()
            cmd = imap.ListCommand(tag=t, reference="", patterns=("*",), return_status=STATUS_ITEMS)
            c.send(imap.serialize_command(cmd))
            c.read_until(t)
        else:
            t = c.tag()
            c.send(imap.serialize_command(imap.ListCommand(tag=t, reference="", patterns=("*",))))
            c.read_until(t)
            tags = []
            batch = []
            for n in names:
                if n in statuses:
                    tags.append(c.tag())
                    batch.append(
                        imap.serialize_command(
                            imap.StatusCommand(tag=tags[-1], mailbox=n, items=STATUS_ITEMS)
                        )
                    )
            c.send(b"".join(batch))
            c.read_until(tags[-1])
        measured_up, measured_down = c.sent - up0, c.received - down0
        predicted = predict_catchup_bytes(
            names,
            statuses,
            [],
            strategy,  # type: ignore[arg-type]
            False,
            connect=False,
            list_attributes=attrs if strategy == DiscoveryStrategy.LIST_STATUS else plain_attrs,
            server_style="dovecot",
        )
        assert predicted.imap_up == pytest.approx(measured_up, rel=0.05), strategy
        assert predicted.imap_down == pytest.approx(measured_down, rel=0.05), strategy
