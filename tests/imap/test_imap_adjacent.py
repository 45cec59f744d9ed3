"""Codec: `Adjacent` items are written back to back (RFC 3501 9 `body-type-mpart = 1*body SP
media-subtype`), and the parser reads them back as the items of the enclosing list."""

from __future__ import annotations

from cpmsync.imap import Adjacent, FetchData, ResponseParser, serialize_response


def test_adjacent_parts_have_no_space_and_parse_back() -> None:
    part = [b"TEXT", b"PLAIN", None, None, None, b"7BIT", 5, 1]
    body = [Adjacent([part, part]), b"MIXED", [b"BOUNDARY", b"x"], [b"INLINE", None]]
    wire = serialize_response(FetchData(1, {"BODYSTRUCTURE": body}))
    assert wire == (
        b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1)'
        b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1) "MIXED" ("BOUNDARY" "x") ("INLINE" NIL)))\r\n'
    )
    p = ResponseParser()
    p.feed(wire)
    got = p.next_event()
    assert isinstance(got, FetchData)
    bs = got.items["BODYSTRUCTURE"]
    assert isinstance(bs, list) and bs[0] == bs[1] and bs[2] == b"MIXED"


def test_nested_adjacent() -> None:
    wire = serialize_response(FetchData(1, {"X": [b"a", Adjacent([[b"b"], Adjacent([[b"c"]])])]}))
    assert b'X ("a" ("b")("c"))' in wire
