"""RFC 3501 6.4.5 / 7.4.2 FETCH rendering from stored bytes: BODYSTRUCTURE, ENVELOPE, body
sections (nested message/rfc822 included), and no exception for any bytes at all (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.imap import Address, FetchBody, FetchData, serialize_response
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
    assert isinstance(bs, list) and isinstance(bs[0], list)
    parts = bs[0]  # the parts, written back to back
    assert parts[0][:2] == [b"TEXT", b"PLAIN"]
    msg = parts[1]
    assert msg[:2] == [b"MESSAGE", b"RFC822"]
    assert b"ALTERNATIVE" in msg[8]
    assert bs[1] == b"MIXED"
    wire = serialize_response(FetchData(1, {"BODYSTRUCTURE": bs}))
    assert wire.startswith(b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8")')


def test_multipart_parts_have_no_space_between_them() -> None:
    """RFC 3501 9: body-type-mpart = 1*body SP media-subtype; env-from = "(" 1*address ")"."""
    for item in ("BODYSTRUCTURE", "BODY"):
        bs = bodystructure(parse_mime(NESTED), extensible=item == "BODYSTRUCTURE")
        wire = serialize_response(FetchData(1, {item: bs}))
        assert b'NIL)("MESSAGE" "RFC822"' in wire or b' 0)("MESSAGE" "RFC822"' in wire, wire
        assert b') ("' not in wire, wire
        assert b'NIL)("TEXT" "HTML"' in wire or b' 0)("TEXT" "HTML"' in wire, wire
    # the envelope of the enclosed message/rfc822 is written by the same raw writer
    two = NESTED.replace(b"From: dave@example.net", b"From: dave@example.net, eve@example.net")
    wire = serialize_response(FetchData(1, {"BODYSTRUCTURE": bodystructure(parse_mime(two))}))
    assert b'((NIL NIL "dave" "example.net")(NIL NIL "eve" "example.net"))' in wire


def test_text_part_lines_exclude_the_boundary_crlf() -> None:
    """RFC 2046 5.1.1: the CRLF before a boundary belongs to it, so "see attached" is 0 lines."""
    bs = bodystructure(parse_mime(NESTED))
    assert isinstance(bs, list) and isinstance(bs[0], list)
    first = bs[0][0]
    assert first[6:8] == ["12", "0"]
    qp = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Hall=C3=B6 Welt\r\n--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\nlines\r\n\r\n--b--\r\n"
    )
    parts = bodystructure(parse_mime(qp))[0]
    assert isinstance(parts, list)
    assert [p[6:8] for p in parts] == [["15", "0"], ["12", "2"]]


def test_envelope_keeps_groups() -> None:
    """RFC 3501 7.4.2: group start (NIL NIL "Team" NIL) ... group end (NIL NIL NIL NIL)."""
    raw = (
        b"From: <tel:+15143457900>\r\nTo: undisclosed-recipients:;\r\n"
        b'Cc: Team: a@x.y, "B. One" <b@x.y>;, carol@z.org (Carol)\r\n\r\nhi'
    )
    env = envelope(raw)
    assert env.to == (Address(None, None, "undisclosed-recipients", None), Address(None, None, None, None))
    assert env.cc == (
        Address(None, None, "Team", None),
        Address(None, None, "a", "x.y"),
        Address("B. One", None, "b", "x.y"),
        Address(None, None, None, None),
        Address("Carol", None, "carol", "z.org"),
    )
    wire = serialize_response(FetchData(1, {"ENVELOPE": env}))
    assert (
        b'((NIL NIL "Team" NIL)(NIL NIL "a" "x.y")("B. One" NIL "b" "x.y")(NIL NIL NIL NIL)'
        b'(NIL NIL "carol" "z.org"))'
    ).replace(b'(NIL NIL "carol"', b'("Carol" NIL "carol"') in wire
    assert env.from_ == (Address(None, None, "tel:+15143457900", ""),)


def test_envelope_route_and_unterminated_group() -> None:
    env = envelope(b"To: <@relay.example:joe@x.y>, Friends: ann@x.y\r\n\r\n")
    assert env.to == (
        Address(None, "@relay.example", "joe", "x.y"),
        Address(None, None, "Friends", None),
        Address(None, None, "ann", "x.y"),
        Address(None, None, None, None),
    )


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


FORWARD = (
    b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n"
)


async def test_sections_inside_a_message_rfc822_body_over_the_wire() -> None:
    # A single-part message's part 1 is its body: here the whole enclosed message; 1.HEADER and
    # 1.TEXT are the enclosed message's, 1.1 its body (imaptest fetch-body-message-rfc822)
    from server_testlib import running_server

    async with running_server() as srv, srv.client() as c:
        await c.login()
        await c.append("INBOX", FORWARD)
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1.1])")).of(
            FetchData
        )[0]
        assert f.body("1") == b"From: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n"
        assert f.body("1.HEADER") == b"From: sub@domain.org\r\nSubject: submsg\r\n\r\n"
        assert f.body("1.TEXT") == b"Hello world\r\n"
        assert f.body("1.1") == b"Hello world\r\n"
        f = (await c.cmd("FETCH 1 BODY.PEEK[1.HEADER.FIELDS (SUBJECT)]")).of(FetchData)[0]
        assert f.body("1.HEADER.FIELDS (SUBJECT)") == b"Subject: submsg\r\n\r\n"


def test_part_numbers_below_a_leaf_do_not_exist() -> None:
    assert _sec(NESTED, (1, 1)) is None  # part 1 is text/plain: it has no part 1.1
    assert _sec(FORWARD, (1, 2)) is None
