"""P1-12 + P1-11: apps see subjects and names decoded (RFC 2047), and CPM `tel:` senders whole,
against our msgstore and against Dovecot (whose ENVELOPE gives `(NIL NIL "tel" "SYNTAX_ERROR")`
for `<tel:+1...>`, so the daemon reads the raw From/To header fields for those messages)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_offline_helpers import offline_settings, outbox_events, sync_once
from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.headers import decode_words, header_addresses
from cpmsync.daemon.sync import message_from_fetch
from cpmsync.imap import Address, Envelope, FetchData
from tests.support.peers import ImapPeer

MESSAGES = [
    (
        b"From: <tel:+15143457900>\r\nTo: =?utf-8?q?Caf=C3=A9_Bob?= <bob@example.org>\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <q@example.org>\r\n\r\nhello\r\n"
    ),
    (
        b"From: =?utf-8?b?SsO8cmdlbg==?= <j@example.org>\r\nTo: <tel:+15143450000>\r\n"
        b"Subject: =?utf-8?b?4piFIHN0YXI=?=\r\nDate: Fri, 27 Nov 2026 10:01:00 +0000\r\n"
        b"Message-ID: <b@example.org>\r\n\r\nhello\r\n"
    ),
]
EXPECTED = {
    "café": ("tel:+15143457900", "Café Bob <bob@example.org>"),
    "★ star": ("Jürgen <j@example.org>", "tel:+15143450000"),
}


def _append(host: str, port: int, user: str, password: str) -> None:
    c = IMAPClient(host, port, ssl=False, use_uid=True)
    c.login(user, password)
    try:
        c.create_folder("Café ★")
        for raw in MESSAGES:
            c.append("Café ★", raw)
    finally:
        c.logout()


async def _check(tmp_path: Path, host: str, port: int, user: str, password: str) -> None:
    assert host == "127.0.0.1"
    await asyncio.to_thread(_append, host, port, user, password)
    settings = offline_settings(port, user, password, tmp_path)
    await sync_once(settings)
    cache = Cache.open(settings.cache.path, user, upgrade=False)
    try:
        got = {m.subject: (m.from_, m.to) for m in cache.messages("Café ★")}
    finally:
        cache.close()
    assert got == EXPECTED
    added: dict[Any, Any] = {
        e["subject"]: (e["from"], e["to"]) for e in outbox_events(settings) if e["kind"] == "message_added"
    }
    assert added == EXPECTED


async def test_subjects_decoded_and_tel_senders_whole(tmp_path: Path, imap_peer: ImapPeer) -> None:
    p = imap_peer
    await _check(tmp_path, p.host, p.port, p.user, p.password)


def test_decode_words() -> None:
    assert decode_words("=?utf-8?q?caf=C3=A9?=") == "café"
    assert decode_words("=?UTF-8?B?4piFIHN0YXI=?= and more") == "★ star and more"
    assert decode_words("plain  text") == "plain  text"
    assert decode_words("=?bogus-charset?q?x?=") == "=?bogus-charset?q?x?="  # kept, never an error
    assert decode_words(None) is None


def test_raw_header_addresses() -> None:
    raw = b'From: "Doe, Jane" <jane@example.org>,\r\n <tel:+15143457900>\r\nTo: bob@example.org\r\n\r\n'
    assert header_addresses(raw, "From") == "Doe, Jane <jane@example.org>, tel:+15143457900"
    assert header_addresses(raw, "To") == "bob@example.org"
    assert header_addresses(raw, "Cc") is None


def test_garbled_envelope_falls_back_to_raw_header() -> None:
    env = Envelope(
        None, "x", (Address(None, None, "tel", "SYNTAX_ERROR"),), None, None, None, None, None, None, None
    )
    raw = b"From: <tel:+15143457900>\r\n\r\n"
    fd = FetchData(1, {"UID": 7, "ENVELOPE": env, "BODY[HEADER.FIELDS (FROM TO)]": raw})
    m = message_from_fetch(fd, "BODY[TEXT]<0>", 100)
    assert m is not None and m.from_ == "tel:+15143457900"


def test_only_the_garbled_field_comes_from_the_raw_header() -> None:
    # The raw block is read once for both fields; a usable ENVELOPE address is still preferred.
    env = Envelope(
        None,
        "x",
        (Address("Ann", None, "ann", "example.org"),),
        None,
        None,
        (Address(None, None, "tel", "SYNTAX_ERROR"),),
        None,
        None,
        None,
        None,
    )
    raw = b"From: raw-ann@example.org\r\nTo: <tel:+1555>\r\nTo: =?utf-8?q?Z=C3=A9?= <z@example.org>\r\n\r\n"
    fd = FetchData(1, {"UID": 7, "ENVELOPE": env, "BODY[HEADER.FIELDS (FROM TO)]": raw})
    m = message_from_fetch(fd, "BODY[TEXT]<0>", 100)
    assert m is not None
    assert m.from_ == "Ann <ann@example.org>"
    assert m.to == "tel:+1555, Zé <z@example.org>"
