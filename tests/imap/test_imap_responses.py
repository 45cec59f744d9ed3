"""Server responses: each type parsed from real-looking wire lines and written back byte-exact."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from imap_testlib import feed_responses

from cpmsync.imap import *  # noqa: F403  (the whole public codec, by its __all__)


def one(wire: bytes) -> object:
    """Parse exactly one response and check it writes back to the same bytes."""
    evs = feed_responses(wire)
    assert len(evs) == 1, evs
    assert serialize_response(evs[0]) == wire  # type: ignore[arg-type]
    return evs[0]


# -- status responses and response codes (RFC 3501 §7.1) ---------------------------------


@pytest.mark.parametrize("status", ["OK", "NO", "BAD", "PREAUTH", "BYE"])
def test_untagged_status(status: str) -> None:
    r = one(f"* {status} server says hi\r\n".encode())
    assert r == StatusResponse(None, status, None, "server says hi")


@pytest.mark.parametrize("status", ["OK", "NO", "BAD"])
def test_tagged_status(status: str) -> None:
    assert one(f"a1 {status} done\r\n".encode()) == StatusResponse("a1", status, None, "done")


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"* OK [ALERT] disk full\r\n", ResponseCode("ALERT")),
        (b"* OK [READ-ONLY] ro\r\n", ResponseCode("READ-ONLY")),
        (b"a OK [READ-WRITE] SELECT done\r\n", ResponseCode("READ-WRITE")),
        (b"* OK [UIDNEXT 4392] next\r\n", ResponseCode("UIDNEXT", 4392)),
        (b"* OK [UIDVALIDITY 3857529045] v\r\n", ResponseCode("UIDVALIDITY", 3857529045)),
        (b"* OK [UNSEEN 12] u\r\n", ResponseCode("UNSEEN", 12)),
        (b"* OK [HIGHESTMODSEQ 9223372036854775807] max\r\n", ResponseCode("HIGHESTMODSEQ", 2**63 - 1)),
        (b"* OK [NOMODSEQ] no modseq\r\n", ResponseCode("NOMODSEQ")),
        (b"* OK [CLOSED] closed\r\n", ResponseCode("CLOSED")),
        (b"a NO [TRYCREATE] no such\r\n", ResponseCode("TRYCREATE")),
        (b"a NO [NONEXISTENT] no such\r\n", ResponseCode("NONEXISTENT")),
        (b"a NO [ALREADYEXISTS] exists\r\n", ResponseCode("ALREADYEXISTS")),
        (b"a OK [MODIFIED 7,9:12] conflict\r\n", ResponseCode("MODIFIED", SequenceSet.parse("7,9:12"))),
        (b"a OK [MAILBOXID (F2212ea87-6097-4256)] ok\r\n", ResponseCode("MAILBOXID", "F2212ea87-6097-4256")),
        (
            b"a OK [APPENDUID 38505 3955] APPEND completed\r\n",
            ResponseCode("APPENDUID", AppendUid(38505, SequenceSet.single(3955))),
        ),
        (
            b"a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
            ResponseCode(
                "COPYUID", CopyUid(38505, SequenceSet.parse("304,319:320"), SequenceSet.parse("3956:3958"))
            ),
        ),
        (
            b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
            ResponseCode("PERMANENTFLAGS", ("\\Deleted", "\\Seen", "\\*")),
        ),
        (
            b"* OK [CAPABILITY IMAP4rev1 LITERAL+ LIST-CHANGEDSINCE] ready\r\n",
            ResponseCode("CAPABILITY", ("IMAP4rev1", "LITERAL+", "LIST-CHANGEDSINCE")),
        ),
        (b"a NO [X-UNKNOWN-CODE some text 1 2] hm\r\n", ResponseCode("X-UNKNOWN-CODE", "some text 1 2")),
        (b"a NO [OVERQUOTA] full\r\n", ResponseCode("OVERQUOTA")),
    ],
)
def test_response_codes(wire: bytes, code: ResponseCode) -> None:
    r = one(wire)
    assert isinstance(r, StatusResponse)
    assert r.code == code


def test_status_without_text_and_bye() -> None:
    assert one(b"* BYE\r\n") == StatusResponse(None, "BYE")
    assert one(b"a2 OK [READ-WRITE]\r\n") == StatusResponse("a2", "OK", ResponseCode("READ-WRITE"))


def test_continuation_requests() -> None:
    assert one(b"+ idling\r\n") == ContinuationRequest("idling")
    assert one(b"+ \r\n") == ContinuationRequest("")
    assert feed_responses(b"+\r\n") == [ContinuationRequest("")]  # some servers omit the space


# -- server and mailbox data --------------------------------------------------------------


def test_capability_enabled_id_namespace() -> None:
    assert one(b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN\r\n") == CapabilityData(
        ("IMAP4rev1", "LITERAL+", "SASL-IR", "AUTH=PLAIN")
    )
    assert one(b"* ENABLED CONDSTORE QRESYNC\r\n") == EnabledData(("CONDSTORE", "QRESYNC"))
    assert one(b'* ID ("name" "cpmsync" "version" NIL)\r\n') == IdData(
        (("name", "cpmsync"), ("version", None))
    )
    assert one(b"* ID NIL\r\n") == IdData(None)
    assert one(b'* NAMESPACE (("" "/")) NIL (("#shared/" "/" "X-EXT" ("a" "b")))\r\n') == NamespaceData(
        (NamespaceDesc("", "/"),), None, (NamespaceDesc("#shared/", "/", (("X-EXT", ("a", "b")),)),)
    )


def test_list_and_lsub_with_nil_delimiter_and_mutf7_names() -> None:
    r = one(b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe/tel:+15143457900"\r\n')
    assert r == ListData(("\\HasNoChildren",), "/", "Entwürfe/tel:+15143457900")
    assert one(b'* LIST (\\Noselect) NIL ""\r\n') == ListData(("\\Noselect",), None, "")
    assert one(b'* LSUB () "." "a.b"\r\n') == ListData((), ".", "a.b", lsub=True)
    assert one(b'* LIST () "\\\\" "x"\r\n') == ListData((), "\\", "x")
    # names the server sent as atom or literal are decoded the same way
    assert feed_responses(b'* LIST () "/" INBOX\r\n') == [ListData((), "/", "INBOX")]
    assert feed_responses(b'* LIST () "/" {4}\r\na"b\\\r\n') == [ListData((), "/", 'a"b\\')]


def test_list_extended_data_items_childinfo_oldname_and_unknown() -> None:
    r = one(b'* LIST (\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert isinstance(r, ListData) and r.childinfo == ("SUBSCRIBED",)
    r = one(b'* LIST () "/" "New" ("OLDNAME" ("Old&AOk-"))\r\n')
    assert isinstance(r, ListData) and r.oldname == "Oldé"
    # the tag may also come as an atom (it is an astring)
    [atom_tag] = feed_responses(b'* LIST () "/" "Foo" (CHILDINFO ("SUBSCRIBED"))\r\n')
    assert atom_tag.childinfo == ("SUBSCRIBED",)
    assert feed_responses(b'* LIST () "/" "New" (OLDNAME ("Old"))\r\n')[0].oldname == "Old"
    [r] = feed_responses(b'* LIST (\\NonExistent) "/" "gone" (X-FOO (1 2) OLDNAME ("was"))\r\n')
    assert isinstance(r, ListData)
    assert serialize_response(r) == b'* LIST (\\NonExistent) "/" "gone" ("OLDNAME" ("was") X-FOO (1 2))\r\n'
    assert r.oldname == "was"
    assert r.extra == (("X-FOO", ["1", "2"]),)


def test_status_items_all_kinds() -> None:
    r = one(
        b'* STATUS "tel:+15143457900" (MESSAGES 231 RECENT 0 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 3 '
        b"HIGHESTMODSEQ 821109221 SIZE 912345 MAILBOXID (Fabc123))\r\n"
    )
    assert isinstance(r, StatusData)
    assert r.mailbox == "tel:+15143457900"
    assert (r.messages, r.recent, r.uidnext, r.uidvalidity, r.unseen) == (231, 0, 44292, 1, 3)
    assert (r.highestmodseq, r.size, r.mailboxid) == (821109221, 912345, "Fabc123")
    assert list(r.items) == [
        "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "MAILBOXID"
    ]  # fmt: skip


def test_flags_exists_recent_expunge() -> None:
    assert one(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n") == FlagsData(
        ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Forwarded")
    )
    assert one(b"* 23 EXISTS\r\n") == ExistsData(23)
    assert one(b"* 5 RECENT\r\n") == RecentData(5)
    assert one(b"* 3 EXPUNGE\r\n") == ExpungeData(3)


def test_vanished_and_vanished_earlier() -> None:
    assert one(b"* VANISHED 405,407,410:420\r\n") == VanishedData(SequenceSet.parse("405,407,410:420"))
    assert one(b"* VANISHED (EARLIER) 41,43:116,118\r\n") == VanishedData(
        SequenceSet.parse("41,43:116,118"), earlier=True
    )


def test_search_and_esearch_with_modseq() -> None:
    assert one(b"* SEARCH 2 5 6\r\n") == SearchData((2, 5, 6))
    assert one(b"* SEARCH\r\n") == SearchData(())
    assert one(b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n") == SearchData(
        (2, 5, 6, 7, 11, 12, 18, 19, 20, 23), 917162500
    )
    r = one(b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800 COUNT 15 ALL 7,9:12 MODSEQ 8001\r\n')
    assert isinstance(r, ESearchData)
    assert (r.tag, r.uid, r.min, r.max, r.count, r.modseq) == ("A285", True, 7, 3800, 15, 8001)
    assert r.all == SequenceSet.parse("7,9:12")
    assert one(b'* ESEARCH (TAG "a") COUNT 0\r\n') == ESearchData("a", False, {"COUNT": 0})


# -- FETCH --------------------------------------------------------------------------------


def test_fetch_typed_items() -> None:
    wire = (
        b"* 12 FETCH (UID 4827313 FLAGS (\\Seen $Forwarded) MODSEQ (12121231000) "
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286)\r\n'
    )
    r = one(wire)
    assert isinstance(r, FetchData)
    assert r.seq == 12 and r.uid == 4827313 and r.modseq == 12121231000 and r.size == 4286
    assert r.flags == ("\\Seen", "$Forwarded")
    assert r.internaldate == datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7)))


def test_fetch_body_sections_with_literals_and_origin() -> None:
    body = b"From: a@b\r\nSubject: hi\r\n\r\n"
    wire = (
        b"* 1 FETCH (UID 9 BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n%s " % (len(body), body)
        + b"BODY[]<0> {5}\r\nhello BODY[1.TEXT] NIL)\r\n"
    )
    r = one(wire)
    assert isinstance(r, FetchData)
    assert r.body("HEADER.FIELDS (FROM SUBJECT)") == body
    assert r.body("", origin=0) == b"hello"
    assert r.items["BODY[1.TEXT]"] is None
    # a quoted section value is read the same (and written back as a literal)
    assert feed_responses(b'* 2 FETCH (BODY[TEXT] "hi there")\r\n') == [
        FetchData(2, {"BODY[TEXT]": b"hi there"})
    ]


def test_fetch_envelope_and_raw_bodystructure() -> None:
    wire = (
        b'* 3 FETCH (ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>") '
        b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" '
        b'"Compiler diff" "BASE64" 4554 73) "MIXED"))\r\n'
    )
    [r] = feed_responses(wire)
    assert isinstance(r, FetchData)
    env = r.envelope
    assert isinstance(env, Envelope)
    assert env.subject == "IMAP4rev1 WG mtg summary"
    assert env.from_ == (Address("Terry Gray", None, "gray", "cac.washington.edu"),)
    assert env.cc is not None and len(env.cc) == 2 and env.bcc is None
    assert env.message_id == "<B27397-0100000@cac.washington.edu>"
    bs = r.items["BODYSTRUCTURE"]
    assert isinstance(bs, list) and bs[-1] == b"MIXED"
    # written back, it parses to the same value
    assert feed_responses(serialize_response(r)) == [r]


def test_fetch_unknown_items_stay_raw() -> None:
    r = one(b"* 4 FETCH (X-GM-THRID 1278455344230334865 EMAILID (M123) UID 8)\r\n")
    assert isinstance(r, FetchData)
    assert r.items["X-GM-THRID"] == "1278455344230334865"
    assert r.items["EMAILID"] == ["M123"]
    assert r.uid == 8


# -- unknown, errors, recovery, limits ---------------------------------------------------


def test_unknown_untagged_responses_are_raw_not_errors() -> None:
    for wire in (
        b"* METADATA INBOX (/private/comment {3}\r\nabc)\r\n",
        b"* 5 XFOO bar\r\n",
        b'* QUOTA "" (STORAGE 10 512)\r\n',
    ):
        assert one(wire) == UnknownResponse(wire)


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage without tag\r\n",
        b'* LIST (\\Noselect "/" x\r\n',
        b"* 5 FETCH (UID x)\r\n",
        b"* STATUS x (MESSAGES)\r\n",
        b'* 5 FETCH "x"\r\n',
        b"a1 FOO bar\r\n",
        b"* OK [UIDNEXT abc] x\r\n",
        b"* VANISHED (LATER) 1\r\n",
        b'* LIST () "/" "unterminated\r\n',
    ],
)
def test_malformed_line_errors_name_position_and_parser_recovers(bad: bytes) -> None:
    p = ResponseParser()
    p.feed(bad + b"a2 OK fine\r\n")
    with pytest.raises(ImapProtocolError) as ei:
        p.next_event()
    assert ei.value.line.startswith(bad[:10])
    assert ei.value.position is not None or "malformed" in ei.value.message
    assert p.next_event() == StatusResponse("a2", "OK", None, "fine")
    assert p.next_event() is NEED_DATA


def test_error_position_points_at_the_bad_byte() -> None:
    with pytest.raises(ImapProtocolError) as ei:
        parse_response(b'* LIST () "/" a\x01b\r\n')
    assert ei.value.position == 15


def test_line_limit_is_enforced_and_the_next_line_parses() -> None:
    long = b"* OK " + b"x" * 200 + b"\r\n"
    evs = feed_responses(long + b"a OK done\r\n", chunk=7, max_line_bytes=100)
    assert isinstance(evs[0], ImapProtocolError) and "max_line_bytes" in evs[0].message
    assert evs[1:] == [StatusResponse("a", "OK", None, "done")]


def test_literal_limit_skips_the_literal_without_buffering_it() -> None:
    big = b"* 1 FETCH (BODY[] {5000}\r\n" + b"y" * 5000 + b")\r\n"
    p = ResponseParser(max_literal_bytes=1000)
    p.feed(big[:40])
    with pytest.raises(ImapProtocolError, match="max_literal_bytes"):
        p.next_event()
    for i in range(40, len(big), 512):
        p.feed(big[i : i + 512])
        assert p.next_event() is NEED_DATA
        assert len(p._framer._buf) <= 1024  # streamed away, never stored
    p.feed(b"* 2 EXISTS\r\n")
    assert p.next_event() == ExistsData(2)


def test_message_limit_counts_all_literals_of_one_line() -> None:
    wire = b"* 1 FETCH (BODY[1] {600}\r\n" + b"a" * 600 + b" BODY[2] {600}\r\n" + b"b" * 600 + b")\r\n"
    evs = feed_responses(wire + b"* 3 EXISTS\r\n", max_message_bytes=1000)
    assert isinstance(evs[0], ImapProtocolError) and "max_message_bytes" in evs[0].message
    assert evs[1:] == [ExistsData(3)]


def test_take_buffered_hands_back_unparsed_bytes() -> None:
    p = ResponseParser()
    p.feed(b"a OK [COMPRESSIONACTIVE] go\r\n\x78\x9c\x01\x02")
    assert isinstance(p.next_event(), StatusResponse)
    assert p.take_buffered() == b"\x78\x9c\x01\x02"
    assert p.next_event() is NEED_DATA


def test_many_lines_in_one_read_no_recursion() -> None:
    """aioimaplib's RecursionError on >1,000 lines in one read must not happen here."""
    wire = b"".join(b'* LIST () "/" "f%d"\r\n' % i for i in range(20_000)) + b"a OK done\r\n"
    evs = feed_responses(wire)
    assert len(evs) == 20_001 and evs[-1] == StatusResponse("a", "OK", None, "done")


def test_deeply_nested_parentheses_no_recursion() -> None:
    depth = 5000
    wire = b"* 1 FETCH (BODYSTRUCTURE " + b"(" * depth + b"x" + b")" * depth + b")\r\n"
    [r] = feed_responses(wire)
    assert isinstance(r, FetchData)
    assert serialize_response(r) == wire


def test_continuation_text_ending_like_a_literal_is_not_a_literal() -> None:
    assert feed_responses(b"+ send {5}\r\n* 1 EXISTS\r\n", chunk=1) == [
        ContinuationRequest("send {5}"),
        ExistsData(1),
    ]


def test_over_long_lines_recover_the_same_way_however_split() -> None:
    """Regressions found by hypothesis: a discarded line's literal must still be skipped, and a
    '+' inside it must not make it look like a continuation request."""
    for wire, tail in (
        (
            b'* NAMESPACE NIL NIL (("" NIL "A+0" () "A" ("00000" {2}\r\n\xc2\x80)))\r\n',
            StatusResponse("zz", "OK"),
        ),
        (b"+ " + b"x" * 40 + b" {5}\r\n", StatusResponse("zz", "OK")),
    ):
        for chunk in (1, 2, 5, 7, 100):
            evs = feed_responses(wire + b"zz OK\r\n", chunk=chunk, max_line_bytes=20, max_literal_bytes=20)
            assert [type(e).__name__ for e in evs] == ["ImapLimitError", "StatusResponse"], chunk
            assert evs[-1] == tail


def test_fetch_fast_path_equals_the_general_parser() -> None:
    upper = b"* 7 FETCH (UID 42 FLAGS (\\Seen $X) MODSEQ (900) RFC822.SIZE 12)\r\n"
    lower = b"* 7 FETCH (uid 42 flags (\\Seen $X) modseq (900) rfc822.size 12)\r\n"  # general path
    assert (
        parse_response(upper)
        == parse_response(lower)
        == FetchData(7, {"UID": 42, "FLAGS": ("\\Seen", "$X"), "MODSEQ": 900, "RFC822.SIZE": 12})
    )
    with pytest.raises(ImapProtocolError, match="UID out of range"):
        parse_response(b"* 1 FETCH (UID 4294967296)\r\n")
