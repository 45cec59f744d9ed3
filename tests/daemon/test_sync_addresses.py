"""How the daemon shows ENVELOPE addresses to apps (RFC 3501 7.4.2 address structures)."""

from __future__ import annotations

from cpmsync.daemon.sync import message_from_fetch
from cpmsync.imap import Address, Envelope, FetchData


def _from(*addrs: Address) -> str | None:
    env = Envelope(None, None, addrs, None, None, None, None, None, None, None)
    m = message_from_fetch(FetchData(1, {"UID": 7, "ENVELOPE": env}), "BODY[TEXT]<0>", 100)
    assert m is not None
    return m.from_


def test_tel_uri_sender_is_one_address() -> None:
    assert _from(Address(None, None, "tel:+15143457900", "")) == "tel:+15143457900"
    assert _from(Address("Bob", None, "bob", "example.com")) == "Bob <bob@example.com>"


def test_group_markers_are_not_addresses() -> None:
    # What Dovecot sends for `From: team: a@b.c, Bob <bob@b.c>;`
    got = _from(
        Address(None, None, "team", None),
        Address(None, None, "a", "b.c"),
        Address("Bob", None, "bob", "b.c"),
        Address(None, None, None, None),
    )
    assert got == "team: a@b.c, Bob <bob@b.c>;"


def test_bare_mailbox_without_group_end_stays_an_address() -> None:
    assert _from(Address(None, None, "alice", None)) == "alice"
