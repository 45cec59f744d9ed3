"""ENVELOPE and BODYSTRUCTURE of the msgstore against the real Dovecot 2.3.19 (audit P0-9).

The same bytes are APPENDed to both servers and FETCHed back; both answers are parsed with the
codec and compared item by item. Only differences that RFC 3501 leaves open are normalised, each
named in `_norm_*` with the reason. The spacing between parenthesized items is compared on the
wire too, since the parser accepts both `)(` and `) (`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from server_testlib import Client, running_server

from cpmsync.imap import Address, Envelope, FetchData

pytestmark = pytest.mark.dovecot

_B64_PNG = (
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n"
)

CORPUS: dict[str, bytes] = {
    "plain": (
        b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\n"
        b"Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu.example\r\n"
        b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
        b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    ),
    "no-final-newline": b"From: a@x.example\r\nSubject: short\r\n\r\nline one\r\nline two",
    "mixed-with-image": (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: photo\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="==b1=="\r\n\r\npreamble\r\n--==b1==\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee the picture\r\nbye\r\n--==b1==\r\n"
        b'Content-Type: image/png; name="dot.png"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="dot.png"\r\nContent-ID: <dot@example.com>\r\n\r\n'
        + _B64_PNG
        + b"--==b1==--\r\nepilogue\r\n"
    ),
    "qp-part": (
        b"From: a@x.y\r\nTo: b@x.y\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Hall=C3=B6 Welt\r\n--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\nlines\r\n\r\n--b--\r\n"
    ),
    "base64-single": (
        b"From: a@x.y\r\nSubject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Description: greeting\r\n\r\nSGFsbMO2IFdlbHQK\r\n"
    ),
    "groups": (
        b"From: boss@x.y\r\nTo: undisclosed-recipients:;\r\nCc: Team: a@x.y, b@x.y;\r\n"
        b'Bcc: "Dev Team": "C. Dev" <c@x.y>;, d@x.y\r\nSubject: groups\r\n\r\nhi\r\n'
    ),
    "tel-sip": (
        b"From: <tel:+15143457900>\r\nTo: Bob <tel:+15143450000>\r\nCc: <sip:al@example.com>\r\n"
        b"Subject: cpm\r\nConversation-ID: f81d4fae-7dec-11d0-a765-00a0c91e6bf6\r\n\r\nhi\r\n"
    ),
    "encoded-words": (
        b"From: =?utf-8?b?Sm/Dq2w=?= <joel@example.com>\r\n"
        b"To: =?iso-8859-1?q?Andr=E9?= Pirard <pirard@x.y>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= und =?utf-8?q?Hall=C3=B6?=\r\n\r\nhi\r\n"
    ),
    "missing-headers": b"\r\nonly a body\r\n",
    "subject-only": b"Subject: nothing else\r\n\r\n",
    "sender-reply-to": (
        b"From: Ann <ann@x.y>\r\nSender: sec@x.y\r\nReply-To: list@x.y, ann@home.example\r\n"
        b"In-Reply-To: <1@x.y>\r\nMessage-ID: <2@x.y>\r\nSubject: Re: x\r\n\r\nok\r\n"
    ),
    "quoted-and-comment-names": (
        b'From: "Doe, John \\"JD\\"" <john@x.y>\r\nTo: ann@x.y (Ann Other), "bob"@x.y\r\n'
        b"Subject: names\r\n\r\nhi\r\n"
    ),
    "nested-alternative-and-rfc822": (
        b"From: a@x.y\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
        b"--alt\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Language: en\r\n\r\n<p>html</p>\r\n--alt--\r\n"
        b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: dave@x.y, eve@x.y\r\nTo: Friends: f@x.y;\r\nSubject: inner\r\n\r\ninner body\r\n"
        b"--outer--\r\n"
    ),
    "multipart-params": (
        b"From: a@x.y\r\nSubject: params\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="r r"; type="text/html"\r\n\r\n'
        b'--r r\r\nContent-Type: text/html; charset="us-ascii"\r\n\r\n<img src="cid:a">\r\n'
        b"--r r\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAEC\r\n--r r--\r\n"
    ),
    "route-and-no-domain": (
        b"From: <@relay.example:joe@x.y>\r\nTo: alice\r\nCc: Empty:;, Other: o@x.y;\r\n"
        b"Subject: odd addresses\r\n\r\nhi\r\n"
    ),
    "digest": (
        b"From: list@x.y\r\nSubject: digest\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
        b"From: one@x.y\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\n"
        b"From: two@x.y\r\nSubject: two\r\n\r\nsecond\r\nmore\r\n--d--\r\n"
    ),
    "inline-disposition": (
        b"From: a@x.y\r\nSubject: inline\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n"
        b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
        b"Content-Disposition: inline; filename=note.txt\r\n\r\nnote\r\n--i--\r\n"
    ),
    "folded-encoded-name": (
        b"From: =?utf-8?q?J=C3=B6rg?=\r\n =?utf-8?q?_M=C3=BCller?= <jm@x.y>\r\n"
        b"Subject: =?utf-8?b?8J+Ymg==?=\r\nDate: Tue, 1 Jan 2030 00:00:00 +0000\r\n\r\nhi\r\n"
    ),
}

MAILBOX = "Diff"


async def _fetch_all(client: Client, user: str, password: str) -> dict[str, tuple[FetchData, bytes]]:
    """APPEND the corpus in order, then FETCH each message: name -> (parsed FETCH, its wire line)."""
    reply = await client.cmd(f'LOGIN "{user}" "{password}"')
    assert reply.ok, reply
    assert (await client.cmd(f'CREATE "{MAILBOX}"')).ok
    for raw in CORPUS.values():
        assert (await client.append(MAILBOX, raw)).ok
    assert (await client.cmd(f'SELECT "{MAILBOX}"')).ok
    out: dict[str, tuple[FetchData, bytes]] = {}
    for seq, name in enumerate(CORPUS, 1):
        reply = await client.cmd(f"FETCH {seq} (ENVELOPE BODYSTRUCTURE BODY)")
        fetches = reply.of(FetchData)
        assert reply.ok and len(fetches) == 1, (name, reply)
        out[name] = (fetches[0], reply.raw)
    return out


_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _as_dovecot(name: Any, adl: Any, mailbox: Any, host: Any) -> tuple[Any, Any, Any, Any]:
    """Our address in Dovecot's placeholders (works on str and on bytes from raw envelopes).

    Dovecot cannot parse a URI in an angle-addr (CPM's `<tel:+15143457900>`): it keeps the scheme
    as the mailbox and invents the host "SYNTAX_ERROR"; the msgstore keeps the URI whole with host
    "" (NIL would be a group start). For an address without any domain Dovecot invents
    "MISSING_DOMAIN" where the msgstore has "". RFC 3501 defines neither placeholder.
    """
    text = mailbox.decode() if isinstance(mailbox, bytes) else mailbox
    if text is None or host is None:
        return name, adl, mailbox, host
    enc = (lambda x: x.encode()) if isinstance(mailbox, bytes) else (lambda x: x)
    m = _URI_RE.match(text)
    if m:  # `<sip:al@example.com>` too: a ":" is not allowed in an RFC 5322 local-part
        return name, adl, enc(m.group(0)[:-1]), enc("SYNTAX_ERROR")
    if host in ("", b""):
        return name, adl, mailbox, enc("MISSING_DOMAIN")
    return name, adl, mailbox, host


def _norm_address(a: Address, dovecot: bool) -> Address:
    return a if dovecot else Address(*_as_dovecot(a.name, a.adl, a.mailbox, a.host))


def _norm_envelope(e: Any, dovecot: bool) -> Any:
    assert isinstance(e, Envelope)

    def addrs(x: tuple[Address, ...] | None) -> tuple[Address, ...] | None:
        return None if x is None else tuple(_norm_address(a, dovecot) for a in x)

    fields = ("from_", "sender", "reply_to", "to", "cc", "bcc")
    return dataclasses.replace(e, **{f: addrs(getattr(e, f)) for f in fields})


def _up(v: Any) -> Any:
    return v.upper() if isinstance(v, bytes) else v


def _params(v: Any) -> Any:
    """Names are case-insensitive (RFC 2045 5.1), and so are charset values (RFC 2046 4.1.2):
    Dovecot writes "us-ascii" for `CHARSET=US-ASCII`; other values are compared exactly."""
    if not isinstance(v, list):
        return v
    out = [_up(x) if i % 2 == 0 else x for i, x in enumerate(v)]
    for i in range(0, len(out) - 1, 2):
        if out[i] == b"CHARSET" and isinstance(out[i + 1], bytes):
            out[i + 1] = out[i + 1].lower()
    return out


def _norm_body(b: Any) -> Any:
    """RFC 3501 compares types, subtypes, parameter names and encodings case-insensitively;
    Dovecot writes them as the message spells them (or lower case), the msgstore upper case."""
    if not isinstance(b, list):
        return b
    if b and isinstance(b[0], list):  # multipart: the parts, then subtype and extension data
        k = next((i for i, x in enumerate(b) if not isinstance(x, list)), len(b))
        out: list[Any] = [_norm_body(x) for x in b[:k]]
        rest = list(b[k:])
        if rest:
            rest[0] = _up(rest[0])
        if len(rest) > 1:
            rest[1] = _params(rest[1])
        if len(rest) > 2 and isinstance(rest[2], list):
            rest[2] = [_up(rest[2][0]), _params(rest[2][1])]
        return out + rest
    out = list(b)
    out[0], out[1], out[2], out[5] = _up(out[0]), _up(out[1]), _params(out[2]), _up(out[5])
    if out[0] == b"MESSAGE" and out[1] == b"RFC822" and len(out) > 8:
        out[8] = _norm_body(out[8])
    ext = 10 if out[0] == b"MESSAGE" and out[1] == b"RFC822" else 8 if out[0] == b"TEXT" else 7
    if len(out) > ext + 1 and isinstance(out[ext + 1], list):
        out[ext + 1] = [_up(out[ext + 1][0]), _params(out[ext + 1][1])]
    return out


def _norm_rfc822_envelope(b: Any, dovecot: bool) -> Any:
    """The envelope inside a message/rfc822 part is a raw list: same address normalisation."""
    if not isinstance(b, list):
        return b
    if b and isinstance(b[0], list):
        return [_norm_rfc822_envelope(x, dovecot) for x in b]
    if len(b) > 9 and _up(b[0]) == b"MESSAGE" and _up(b[1]) == b"RFC822" and isinstance(b[7], list):
        b = list(b)
        env = list(b[7])
        for i in range(2, 8):
            if isinstance(env[i], list):
                env[i] = [list(a if dovecot else _as_dovecot(*a)) for a in env[i]]
        b[7] = env
        b[8] = _norm_rfc822_envelope(b[8], dovecot)
    return b


@pytest.mark.parametrize("item", ["ENVELOPE", "BODYSTRUCTURE", "BODY"])
async def test_fetch_matches_dovecot(dovecot_account: Any, item: str) -> None:
    async with Client(dovecot_account.host, dovecot_account.port) as dc:
        dovecot = await _fetch_all(dc, dovecot_account.user, dovecot_account.password)
    async with running_server() as srv, srv.client() as mc:
        ours = await _fetch_all(mc, "alice", "alice-pw")
    diffs = []
    for name in CORPUS:
        dv, mine = dovecot[name][0].items[item], ours[name][0].items[item]
        if item == "ENVELOPE":
            dv, mine = _norm_envelope(dv, True), _norm_envelope(mine, False)
        else:
            dv = _norm_body(_norm_rfc822_envelope(dv, True))
            mine = _norm_body(_norm_rfc822_envelope(mine, False))
        if dv != mine:
            diffs.append(f"{name}:\n  dovecot  {dv!r}\n  msgstore {mine!r}")
    assert not diffs, "\n".join(diffs)


async def test_parenthesized_items_spaced_like_dovecot(dovecot_account: Any) -> None:
    """`)(` between parts and addresses, `) (` elsewhere: counted on the wire, per message."""
    async with Client(dovecot_account.host, dovecot_account.port) as dc:
        dovecot = await _fetch_all(dc, dovecot_account.user, dovecot_account.password)
    async with running_server() as srv, srv.client() as mc:
        ours = await _fetch_all(mc, "alice", "alice-pw")
    for name in CORPUS:
        dv, mine = dovecot[name][1], ours[name][1]
        assert (mine.count(b")("), mine.count(b") (")) == (dv.count(b")("), dv.count(b") (")), (
            name,
            dv,
            mine,
        )
