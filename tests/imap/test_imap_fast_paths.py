# ruff: noqa: E501  (strategy tables stay one concept per line, like the grammar they mirror)
"""The parsers' fast paths answer exactly what the general path answers, or leave the line to it.

A fast path (the run tokenizer, the typed FETCH path) may decline a line; when it answers, its
value must equal the general path's, and a line the general path rejects must still raise the
same ImapProtocolError and be consumed. Lines are generated at the wire level, Dovecot-shaped,
with literals, NIL in any casing, escapes, 8-bit bytes and random damage."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from imap_testlib import errors_equal, feed_responses

from cpmsync.imap import FetchData, ImapProtocolError, StatusResponse, _lexer, parse_response, response_parser

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _casing(draw: Any, word: str, plain: bool) -> str:
    if plain or draw(st.integers(0, 3)):  # mostly as servers write it: odd casing must not hide the rest
        return word
    return "".join(c.lower() if draw(st.booleans()) else c for c in word)


quoted_chars = st.sampled_from([*"abc XYZ09.-@<>:+()[]{}%*", '\\"', "\\\\", "é", "NIL"])


@st.composite
def nstring(draw: Any, plain: bool = False) -> bytes:
    """NIL, a quoted string (escapes, 8-bit), a literal (Dovecot's form of 8-bit text), or (not plain) an atom."""
    kind = draw(
        st.sampled_from(
            ["nil", "quoted", "quoted", "literal"] if plain else ["nil", "quoted", "literal", "atom"]
        )
    )
    if kind == "nil":
        return _casing(draw, "NIL", plain).encode()
    if kind == "quoted":
        return b'"' + "".join(draw(st.lists(quoted_chars, max_size=8))).encode() + b'"'
    if kind == "literal":
        data = draw(st.binary(max_size=12) | st.sampled_from(["Zoé", 'Café "quoted" ok']).map(str.encode))
        return b"{%d}\r\n" % len(data) + data
    return draw(st.sampled_from([b"abc", b"tel", b"Mon"]))


@st.composite
def address_list(draw: Any, plain: bool = False) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return _casing(draw, "NIL", plain).encode()
    addrs = [
        b"(" + b" ".join(draw(nstring(plain)) for _ in range(4)) + b")"
        for _ in range(draw(st.integers(1 if plain else 0, 3)))
    ]
    return b"(" + (b"" if plain or draw(st.booleans()) else b" ").join(addrs) + b")"


@st.composite
def fetch_item(draw: Any, plain: bool = False) -> bytes:
    """One `name value` pair as Dovecot writes it (plain) or, one time in three, as another server might."""
    plain = plain or draw(st.integers(0, 2)) > 0  # one odd item in a line of plain ones: the sharpest test
    kind = draw(
        st.sampled_from(["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODY"])
    )
    name = _casing(draw, kind, plain).encode()
    if kind in ("UID", "RFC822.SIZE"):
        top = (2**32 - 1 if kind == "UID" else 10**18 - 1) if plain else 10**20
        big = st.integers(0, top)
        return name + b" %d" % draw(big)
    if kind == "MODSEQ":
        return name + b" (%d)" % draw(st.integers(0, 10**18 - 1 if plain else 10**20))
    if kind == "FLAGS":
        fl = draw(
            st.lists(
                st.sampled_from(["\\Seen", "\\Recent", "\\Flagged", "$Forwarded", "\\*", "%x"]), max_size=4
            )
        )
        if not plain:
            fl.insert(
                draw(st.integers(0, len(fl))),
                draw(st.sampled_from(["NIL", "nil", "a[b c]", "(x)", '"q"', "{1}\r\nx"])),
            )
        return name + b" (" + " ".join(fl).encode() + b")"
    if kind == "INTERNALDATE":
        day = draw(st.sampled_from(["05", " 5", "28", "10"] + ([] if plain else ["31", "32", "5"])))
        mon = draw(st.sampled_from(["Feb", "feb"] + ([] if plain else ["Foo"])))
        zone = draw(st.sampled_from(["+0000", "-0700", "+0530"] + ([] if plain else ["+2400", "-0099"])))
        return name + f' "{day}-{mon}-2026 14:58:27 {zone}"'.encode()
    if kind == "ENVELOPE":
        parts = [draw(nstring(plain)), draw(nstring(plain))]
        parts += [draw(address_list(plain)) for _ in range(6)]
        parts += [draw(nstring(plain)), draw(nstring(plain))]
        if not plain and draw(st.integers(0, 9)) == 0:
            parts = parts[: draw(st.integers(0, 9))]
        return name + b" (" + b" ".join(parts) + b")"
    section = draw(
        st.sampled_from(["TEXT", "HEADER.FIELDS (CONTENT-TYPE CONTENT-TRANSFER-ENCODING)", "1.MIME", ""])
    )
    partial = draw(st.sampled_from(["", "<0>"] + ([] if plain else ["<0.5>", "x"])))
    value = draw(st.one_of(st.binary(max_size=40).map(lambda d: b"{%d}\r\n" % len(d) + d), nstring(plain)))
    return name + b"[" + _casing(draw, section, plain).encode() + b"]" + partial.encode() + b" " + value


@st.composite
def fetch_line(draw: Any, plain: bool = False) -> bytes:
    items = draw(st.lists(fetch_item(plain), min_size=1, max_size=8))
    return b"* %d FETCH (" % draw(st.integers(1, 10**6)) + b" ".join(items) + b")\r\n"


@st.composite
def damaged(draw: Any, line: bytes) -> bytes:
    """`line` with a few bytes deleted, replaced or inserted (IMAP specials first)."""
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(line)))
        b = draw(
            st.sampled_from(
                [b"(", b")", b'"', b"\\", b" ", b"{", b"}", b"\r", b"\n", b"x", b"0", b"\xff", b"[", b"]"]
            )
        )
        op = draw(st.sampled_from(["delete", "replace", "insert"]))
        line = line[:i] + (b if op != "delete" else b"") + line[i + (op != "insert") :]
    return line


lines = st.one_of(
    fetch_line(True), fetch_line(False), fetch_line(True).flatmap(damaged), fetch_line(False).flatmap(damaged)
)


def _general(raw: bytes) -> object:
    """parse_response with every fast path off: the reference answer (an error as its triple)."""
    with (
        mock.patch.object(response_parser, "_fast", lambda raw: None),
        mock.patch.object(_lexer, "_tokenize_runs", lambda *a: None),
    ):
        return _answer(raw)


def _answer(raw: bytes) -> object:
    try:
        return parse_response(raw)
    except ImapProtocolError as e:
        return (type(e), e.message, e.position)


@MANY
@given(fetch_line(plain=True))
def test_the_fetch_fast_path_takes_dovecot_lines_and_agrees(raw: bytes) -> None:
    fast = response_parser._fast_fetch(raw)
    assert fast is not None, raw
    assert fast == _general(raw)


@MANY
@given(lines)
@example(b"* 1 FETCH (FLAGS (\\Seen nil))\r\n")  # NIL is a flag named NIL, in any casing
@example(b"* 1 FETCH (FLAGS (a[b c]))\r\n")  # a "[" holds spaces to its "]"
@example(b"* 1 FETCH (UID 4294967296)\r\n")  # out of range: the general path says so
@example(b"* 1 FETCH (ENVELOPE (NIL {2}\r\nhi NIL NIL NIL NIL NIL NIL NIL NIL))\r\n")
@example(b"* 1 FETCH (BODY[TEXT]<0> {9}\r\nab)\r\n")  # a literal past the end of the line
@example(
    b'* 1 FETCH (ENVELOPE (NIL NIL (({4}\r\nZo\xc3\xa9 NIL "tel" "x")) () NIL NIL NIL NIL NIL {3}\r\nab))\r\n'
)
@example(
    b'* 1 FETCH (ENVELOPE (NIL NIL (({4}\r\nZo\xc3\xa9 NIL "tel" "x") (NIL NIL NIL NIL)) NIL NIL NIL NIL NIL NIL NIL))\r\n'
)
@example(b'* 1 FETCH (ENVELOPE (NIL {1}\r\nx "not a list" NIL NIL NIL NIL NIL NIL NIL))\r\n')
def test_fast_paths_agree_with_the_general_path_on_any_fetch_line(raw: bytes) -> None:
    want = _general(raw)
    fast = response_parser._fast_fetch(raw)
    if isinstance(want, tuple):  # the general path rejects it: the fast path must not answer
        assert fast is None
    elif fast is not None:
        assert fast == want
    assert _answer(raw) == want


@MANY
@given(lines)
def test_a_malformed_line_raises_and_is_consumed_the_same_way(raw: bytes) -> None:
    tail = b"t1 OK done\r\n"
    got = feed_responses(raw + tail)
    with (
        mock.patch.object(response_parser, "_fast", lambda raw: None),
        mock.patch.object(_lexer, "_tokenize_runs", lambda *a: None),
    ):
        want = feed_responses(raw + tail)
    assert errors_equal(got, want)
    assert [getattr(e, "position", None) for e in got] == [getattr(e, "position", None) for e in want]


token_bits = st.sampled_from(
    [b"(", b")", b" ", b"  ", b'"a\\"b"', b'""', b'"x y"', b"NIL", b"nil", b"Nil", b"{3}\r\n", b"{0}\r\n", b"{2+}\r\n", b"{1}\n",
     b"abc", b"42", b"[x y]", b"BODY[TEXT]<0>", b"a[b", b"\r\n", b"\n", b"\r", b"\\Seen", b'"', b"{", b"}", b"\xff", b"]", b"[", b"%*"]
)  # fmt: skip


@MANY
@given(
    st.one_of(st.lists(token_bits, max_size=30).map(b"".join), lines),
    st.sampled_from(["line", "all", "short"]),
)
def test_the_run_tokenizer_agrees_with_the_checked_one(raw: bytes, bound: str) -> None:
    end = {
        "line": response_parser._line_end(raw) if raw else 0,
        "all": len(raw),
        "short": max(0, len(raw) - 3),
    }[bound]
    try:
        want: object = _lexer.tokenize_checked(raw, 0, end)
    except (ImapProtocolError, UnicodeError):  # 8-bit in an atom: parse_response reports it
        want = None
    try:
        got = _lexer._tokenize_runs(raw, 0, end)
    except UnicodeError:
        got = None
    if want is None:
        assert got is None
    else:
        assert got is None or got == want


@MANY
@given(st.one_of(fetch_line(True), fetch_line(False)))
def test_the_run_tokenizer_takes_well_formed_lines(raw: bytes) -> None:
    pos, end = raw.index(b"FETCH") + 5, len(raw) - 2
    assert _lexer._tokenize_runs(raw, pos, end) == _lexer.tokenize_checked(raw, pos, end)


def test_examples_where_the_old_fetch_fast_path_differed() -> None:
    """A "[" in a flag holds spaces to its "]", and nil is NIL in a flag list."""
    assert parse_response(b"* 1 FETCH (FLAGS (a[b c] nil))\r\n") == FetchData(1, {"FLAGS": ("a[b c]", "NIL")})


def test_a_malformed_fetch_line_raises_then_the_next_line_parses() -> None:
    wire = b'* 1 FETCH (UID 7 INTERNALDATE "32-Feb-2026 14:58:27 +0000")\r\nt1 OK done\r\n'
    evs = feed_responses(wire)
    assert [type(e) for e in evs] == [ImapProtocolError, StatusResponse]
    assert "invalid date-time" in str(evs[0])


def test_a_section_and_flags_read_again_from_the_fast_paths_cache_keep_their_case_rules() -> None:
    """A body section's key is upper case however the server wrote it, flags keep theirs: the
    second line is typed from the caches of the first, and gives the same."""
    line = b"* 1 FETCH (UID 5 FLAGS (\\Seen $Label) BODY[text]<0> {3}\r\nabc)\r\n"
    want = FetchData(1, {"UID": 5, "FLAGS": ("\\Seen", "$Label"), "BODY[TEXT]<0>": b"abc"})
    assert response_parser._fast_fetch(line) == want
    assert parse_response(line) == want
    assert parse_response(line) == want
