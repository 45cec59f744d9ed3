"""The codec against a real server (Dovecot 2.3): its bytes parse, and our bytes are accepted.

A tiny blocking client drives the codec here: send command_chunks (waiting for "+" between them),
feed whatever the socket returns to ResponseParser. No other IMAP library is involved.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

from cpmsync.imap import *  # noqa: F403  (the whole public codec, by its __all__)

TIMEOUT_S = 30


class CodecClient:
    """Blocking socket + the sans-I/O codec; records every byte the server sent."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        self.parser = ResponseParser()
        self.received = bytearray()
        self.n = 0
        greeting = self._next()
        assert isinstance(greeting, StatusResponse) and greeting.status == "OK"

    def _next(self) -> Response:
        while True:
            for ev in self.parser.events():
                return ev
            data = self.sock.recv(65536)
            assert data, "server closed the connection"
            self.received += data
            self.parser.feed(data)

    def run(self, make: Callable[..., Command], *args: object, literal_plus: bool = False) -> list[Response]:
        self.n += 1
        tag = f"c{self.n}"
        cmd = make(tag, *args)
        chunks = command_chunks(cmd, literal_plus=literal_plus)
        self.sock.sendall(chunks[0])
        out: list[Response] = []
        pending = chunks[1:]
        while True:
            ev = self._next()
            if isinstance(ev, ContinuationRequest) and pending:
                self.sock.sendall(pending.pop(0))
                continue
            out.append(ev)
            if isinstance(ev, StatusResponse) and ev.tag == tag:
                assert ev.status == "OK", ev
                return out

    def close(self) -> None:
        self.sock.close()


def _login(account: object) -> CodecClient:
    c = CodecClient(account.host, account.port)  # type: ignore[attr-defined]
    c.run(LoginCommand, account.user, account.password)  # type: ignore[attr-defined]
    return c


def test_list_status_over_3000_dovecot_folders_parses_completely(dovecot_account: object) -> None:
    """The aioimaplib failure case (one read of >1,000 lines) through our parser."""
    names = [f"tel:+1514{i:07d}" for i in range(1500)] + [f"grp/{i:04d}-Entwürfe" for i in range(1500)]
    dovecot_account.server.create_mailboxes(dovecot_account.user, names)  # type: ignore[attr-defined]
    c = _login(dovecot_account)
    try:
        evs = c.run(ListCommand, "", ("*",), (), None, (), ("MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"))
    finally:
        c.close()
    lists = [e for e in evs if isinstance(e, ListData)]
    stats = [e for e in evs if isinstance(e, StatusData)]
    listed = {e.name for e in lists}
    assert set(names) <= listed  # mUTF-7 names ("Entw&APw-rfe") decoded
    assert "grp" in listed  # the parent Dovecot made
    assert {s.mailbox for s in stats} >= set(names)
    assert all(s.uidnext == 1 and s.messages == 0 and s.highestmodseq is not None for s in stats)
    assert not [e for e in evs if isinstance(e, UnknownResponse)]
    # in Dovecot's style (atoms where possible) our writer reproduces its bytes exactly
    assert bytes(c.received).endswith(b"".join(serialize_response(e, mailbox_style="atom") for e in evs))


def test_append_select_fetch_store_search_with_literals(dovecot_account: object) -> None:
    msg = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n"
        b"Message-ID: <m1@example.com>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
        b"hello {5}\r\n\xc3\xa4 body\r\n"
    )
    when = datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC)
    c = _login(dovecot_account)
    try:
        caps = [e for e in c.run(EnableCommand, ("QRESYNC",)) if isinstance(e, EnabledData)]
        assert caps == [EnabledData(("QRESYNC",))]
        c.run(CreateCommand, "Chats/tel:+15143457900")
        # synchronizing literals: the client waits for "+" (exercised by run())
        ok = c.run(AppendCommand, "Chats/tel:+15143457900", msg, ("\\Seen", "$Forwarded"), when)[-1]
        assert isinstance(ok, StatusResponse) and ok.code is not None and ok.code.name == "APPENDUID"
        c.run(AppendCommand, "Chats/tel:+15143457900", b"Subject: two\r\n\r\nx", literal_plus=True)
        sel = c.run(SelectCommand, "Chats/tel:+15143457900", False, True)
        assert ExistsData(2) in sel
        codes = {e.code.name for e in sel if isinstance(e, StatusResponse) and e.code is not None}
        assert {"UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "PERMANENTFLAGS", "READ-WRITE"} <= codes
        fetched = c.run(
            FetchCommand,
            SequenceSet.parse("1:*"),
            ("UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
             FetchBody(True), FetchBody(True, (), "HEADER.FIELDS", ("SUBJECT", "FROM")),
             FetchBody(True, (1,), "", (), (0, 5))),
            True,
        )  # fmt: skip
        f1, f2 = [e for e in fetched if isinstance(e, FetchData)]
        assert f1.body() == msg and f1.size == len(msg) and f1.internaldate == when
        assert f1.flags is not None and set(f1.flags) - {"\\Recent"} == {"\\Seen", "$Forwarded"}
        assert f1.envelope is not None and f1.envelope.message_id == "<m1@example.com>"
        assert f1.envelope.from_ is not None and f1.envelope.from_[0].host == "example.com"
        assert f1.body("HEADER.FIELDS (SUBJECT FROM)") is not None
        assert f1.body("1", origin=0) == msg[msg.index(b"\r\n\r\n") + 4 :][:5]
        assert isinstance(f1.items["BODYSTRUCTURE"], list)
        assert f2.uid == f1.uid + 1 and f2.modseq is not None  # type: ignore[operator]
        stored = c.run(StoreCommand, SequenceSet.single(f2.uid), "+", ("\\Flagged",), False, True)  # type: ignore[arg-type]
        assert any(isinstance(e, FetchData) and e.flags and "\\Flagged" in e.flags for e in stored)
        found = c.run(SearchCommand, (SearchKey("FLAGGED"), SearchKey("MODSEQ", (1,))), True)
        assert SearchData((f2.uid,), found[0].modseq) == found[0]  # type: ignore[union-attr,arg-type]
        # QRESYNC: VANISHED (EARLIER) after an expunge elsewhere in time
        c.run(StoreCommand, SequenceSet.single(f1.uid), "+", ("\\Deleted",), True, True)  # type: ignore[arg-type]
        c.run(ExpungeCommand, SequenceSet.single(f1.uid))  # type: ignore[arg-type]
        van = c.run(FetchCommand, SequenceSet.parse("1:*"), ("FLAGS",), True, 1, True)
        assert VanishedData(SequenceSet.single(f1.uid), earlier=True) in van  # type: ignore[arg-type]
        caps_after = [e for e in c.run(CapabilityCommand) if isinstance(e, CapabilityData)]
        assert caps_after and "IMAP4rev1" in caps_after[0].capabilities
    finally:
        c.close()


def test_dovecot_accepts_every_extension_form_we_build(dovecot_account: object) -> None:
    """Commands the daemon relies on, built by our writer, each answered OK by Dovecot and every
    untagged answer typed (no UnknownResponse)."""
    from cpmsync.imap import (
        IDLE_DONE,
        ContinuationRequest,
        IdCommand,
        IdData,
        IdleCommand,
        LsubCommand,
        NamespaceCommand,
        NamespaceData,
        NoopCommand,
        NotifyCommand,
        NotifyEvent,
        NotifyGroup,
        StatusCommand,
        SubscribeCommand,
    )

    c = _login(dovecot_account)
    try:
        assert any(isinstance(e, IdData) for e in c.run(IdCommand, (("name", "cpmsync"), ("version", None))))
        assert any(isinstance(e, NamespaceData) for e in c.run(NamespaceCommand))
        for name in ("Default", "tel:+15143457900", "grp/f81d4fae-7dec-11d0-a765-00a0c91e6bf5", "Entwürfe"):
            c.run(CreateCommand, name)
        c.run(SubscribeCommand, "Default")
        evs = c.run(
            ListCommand, "", ("*", "%"), ("SUBSCRIBED", "RECURSIVEMATCH"), None, ("CHILDREN",),
            ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ", "SIZE", "RECENT"),
        )  # fmt: skip
        assert [e.name for e in evs if isinstance(e, ListData)] == ["Default"]
        st = [e for e in evs if isinstance(e, StatusData)]
        assert st and st[0].size == 0 and st[0].unseen == 0
        evs = c.run(ListCommand, "", ("grp",), (), None, ("CHILDREN",))
        [grp] = [e for e in evs if isinstance(e, ListData)]
        assert "\\HasChildren" in grp.attributes
        assert [e.name for e in c.run(LsubCommand, "", "*") if isinstance(e, ListData)] == ["Default"]
        evs = c.run(StatusCommand, "Entwürfe", ("MESSAGES", "HIGHESTMODSEQ", "UIDVALIDITY"))
        assert [e.mailbox for e in evs if isinstance(e, StatusData)] == ["Entwürfe"]
        c.run(
            NotifyCommand,
            (
                NotifyGroup(
                    "selected",
                    (),
                    (NotifyEvent("MessageNew", ("UID", "FLAGS")), NotifyEvent("MessageExpunge")),
                ),
                NotifyGroup("personal", (), (NotifyEvent("MessageNew"), NotifyEvent("MailboxName"))),
                NotifyGroup("subtree", ("grp",), (NotifyEvent("FlagChange"),)),
            ),
            True,
        )
        c.run(NotifyCommand, None)
        c.run(NoopCommand)
        # IDLE: "+ idling", then the raw DONE line ends it with a tagged OK
        c.n += 1
        c.sock.sendall(f"c{c.n} IDLE\r\n".encode())
        assert isinstance(c._next(), ContinuationRequest)
        c.sock.sendall(IDLE_DONE)
        done = c._next()
        assert isinstance(done, StatusResponse) and done.tag == f"c{c.n}" and done.status == "OK"
        assert IdleCommand  # built form is the same bytes: covered in test_imap_commands
        assert not [e for e in evs if isinstance(e, UnknownResponse)]
    finally:
        c.close()
