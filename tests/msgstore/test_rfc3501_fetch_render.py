"""RFC 3501 6.4.5 / 7.4.2 FETCH rendering from stored bytes: BODYSTRUCTURE, ENVELOPE, body
sections (nested message/rfc822 included), and no exception for any bytes at all (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.imap import FetchBody, FetchData, serialize_response
from cpmsync.msgstore.fetch_render import body_section, bodystructure, envelope, parse_mime

NESTED = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com, Carol <carol@example.org>\r\n"
    b"Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"preamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
    b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: dave@example.net\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
    b"--in\r\nContent-Type: text/plain\r\n\r\nplain inner\r\n"
    b"--in\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--in--\r\n"
    b"\r\n--outer--\r\nepilogue\r\n"
)


def _sec(
    raw: bytes, part: tuple[int, ...] = (), text: str = "", fields: tuple[str, ...] = ()
) -> bytes | None:
    return body_section(raw, FetchBody(part=part, text=text, fields=fields))


def test_nested_parts_are_addressable() -> None:
    assert _sec(NESTED, (1,)) == b"see attached"
    assert _sec(NESTED, (2, 1)) == b"plain inner"
    assert _sec(NESTED, (2, 2)) == b"<b>x</b>"
    assert _sec(NESTED, (2,), "HEADER").startswith(b"From: dave@example.net")
    assert _sec(NESTED, (2,), "MIME") == b"Content-Type: message/rfc822\r\n\r\n"
    assert _sec(NESTED, (9,)) is None
    assert _sec(NESTED, (), "HEADER.FIELDS", ("SUBJECT",)) == b"Subject: fwd\r\n\r\n"
    not_fields = _sec(NESTED, (), "HEADER.FIELDS.NOT", ("SUBJECT", "FROM"))
    assert not_fields is not None and b"Subject" not in not_fields and b"To:" in not_fields
    assert body_section(NESTED, FetchBody(partial=(2, 5))) == NESTED[2:7]


def test_bodystructure_shape() -> None:
    bs = bodystructure(parse_mime(NESTED))
    assert isinstance(bs, list)
    assert bs[0][:2] == [b"TEXT", b"PLAIN"]
    msg = bs[1]
    assert msg[:2] == [b"MESSAGE", b"RFC822"]
    assert msg[8][-1] == b"ALTERNATIVE" or b"ALTERNATIVE" in msg[8]
    assert b"MIXED" in bs
    wire = serialize_response(FetchData(1, {"BODYSTRUCTURE": bs}))
    assert wire.startswith(b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8")')


def test_envelope_addresses() -> None:
    env = envelope(NESTED)
    assert env.subject == "fwd"
    assert [(a.name, a.mailbox, a.host) for a in env.to or ()] == [
        (None, "bob", "example.com"),
        ("Carol", "carol", "example.org"),
    ]
    assert env.sender == env.from_ == env.reply_to


def test_envelope_tel_uri_is_one_address() -> None:
    """CPM's `From: <tel:...>` is one address, not a group "tel" plus a second mailbox."""
    raw = b"From: <tel:+15143457900>\r\nTo: Bob <tel:+15143450000>, <sip:al@example.com>\r\n\r\nhi"
    env = envelope(raw)
    assert [(a.name, a.mailbox, a.host) for a in env.from_ or ()] == [(None, "tel:+15143457900", "")]
    assert [(a.name, a.mailbox, a.host) for a in env.to or ()] == [
        ("Bob", "tel:+15143450000", ""),
        (None, "sip:al", "example.com"),
    ]
    wire = serialize_response(FetchData(1, {"ENVELOPE": env}))
    # host "" and not NIL: (mailbox, NIL host) would be an RFC 3501 7.4.2 start-of-group marker
    assert b'((NIL NIL "tel:+15143457900" ""))' in wire


def test_message_without_header_or_body() -> None:
    assert _sec(b"just text, no header", (), "TEXT") == b""
    assert _sec(b"\r\nbody only", (), "TEXT") == b"body only"
    assert bodystructure(parse_mime(b""))[:2] == [b"TEXT", b"PLAIN"]


@settings(max_examples=200, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Type: multipart/mixed; boundary=b\r\n",
                    b"Content-Type: message/rfc822\r\n",
                    b"\r\n",
                    b"--b\r\n",
                    b"--b--\r\n",
                    b"Subject: =?utf-8?q?x?=\r\n",
                    b"From: <@>,,\r\n",
                    b" folded\r\n",
                    b"body\r\n",
                    b"\xff\xfe\r\n",
                ]
            ),
            max_size=40,
        ).map(b"".join),
    ),
    part=st.lists(st.integers(0, 4), max_size=4).map(tuple),
    text=st.sampled_from(["", "HEADER", "TEXT", "MIME", "HEADER.FIELDS"]),
)
def test_any_bytes_render_without_exception(raw: bytes, part: tuple[int, ...], text: str) -> None:
    root = parse_mime(raw)
    serialize_response(FetchData(1, {"BODYSTRUCTURE": bodystructure(root), "ENVELOPE": envelope(raw)}))
    body_section(raw, FetchBody(part=tuple(p for p in part if p > 0), text=text, fields=("FROM",)))
