# ruff: noqa: E501  (strategy tables stay one concept per line, like the grammar they mirror)
"""Hypothesis properties of the codec: build->parse round-trips for every type, split-anywhere
feeding gives the same events, and arbitrary bytes raise nothing but ImapProtocolError."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_testlib import errors_equal, feed_responses

from cpmsync.imap import *  # noqa: F403  (the whole public codec, by its __all__)

MAX_MODSEQ = 2**63 - 1
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- building blocks ------------------------------------------------------------------------

tags = st.from_regex(r"[A-Za-z0-9.]{1,8}", fullmatch=True)
words = st.from_regex(r"[A-Za-z][A-Za-z0-9=+-]{0,12}", fullmatch=True).filter(lambda s: s.upper() != "NIL")
upper_words = words.map(str.upper)
flags = st.one_of(
    st.sampled_from(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent", "\\*"]),
    st.from_regex(r"\$?[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True).filter(lambda s: s.upper() != "NIL"),
)
flag_tuples = st.lists(flags, max_size=5).map(tuple)
text = st.text(max_size=30)
line_text = st.text(max_size=30).filter(lambda s: "\r" not in s and "\n" not in s)
names = st.text(max_size=25)  # any Unicode mailbox name (written in modified UTF-7)
cmd_mailboxes = names.filter(lambda s: s.upper() != "INBOX" or s == "INBOX")
uids = st.integers(min_value=1, max_value=MAX_UID)
modseqs = st.integers(min_value=1, max_value=MAX_MODSEQ)
u64 = st.integers(min_value=0, max_value=MAX_MODSEQ)
seqsets = st.lists(
    st.tuples(st.integers(min_value=0, max_value=MAX_UID), st.integers(min_value=0, max_value=MAX_UID)),
    min_size=1,
    max_size=6,
).map(lambda r: SequenceSet(tuple(r)))
uidsets = st.sets(uids, min_size=1, max_size=20).map(SequenceSet.from_ints)
datetimes = st.builds(
    lambda dt, off: dt.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=off))),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
objectids = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)
delims = st.one_of(st.none(), st.characters(min_codepoint=0x21, max_codepoint=0x7E))
raw_atoms = st.from_regex(r"[A-Za-z0-9.]{1,8}", fullmatch=True).filter(lambda s: s.upper() != "NIL")
raw_values = st.recursive(
    st.one_of(raw_atoms, st.binary(max_size=10), st.none()),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)

# -- responses ------------------------------------------------------------------------------

codes = st.one_of(
    st.sampled_from(["ALERT", "READ-ONLY", "READ-WRITE", "NOMODSEQ", "TRYCREATE", "NONEXISTENT",
                     "ALREADYEXISTS", "CLOSED"]).map(ResponseCode),
    st.builds(ResponseCode, st.sampled_from(["UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"]), u64),
    st.builds(ResponseCode, st.sampled_from(["CAPABILITY", "PERMANENTFLAGS"]),
              st.lists(st.one_of(words, flags), max_size=4).map(tuple)),
    st.builds(ResponseCode, st.just("MODIFIED"), seqsets),
    st.builds(ResponseCode, st.just("MAILBOXID"), objectids),
    st.builds(ResponseCode, st.just("APPENDUID"), st.builds(AppendUid, uids, uidsets)),
    st.builds(ResponseCode, st.just("COPYUID"), st.builds(CopyUid, uids, uidsets, uidsets)),
    st.builds(ResponseCode, words.map(lambda w: "X-" + w.upper()),
              st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9 ]{0,10}[A-Za-z0-9]", fullmatch=True))),
)  # fmt: skip
status_text = line_text.filter(lambda s: not s.startswith("["))


@st.composite
def status_responses(draw: Any) -> StatusResponse:
    tag = draw(st.one_of(st.none(), tags))
    words_ = ["OK", "NO", "BAD"] + (["PREAUTH", "BYE"] if tag is None else [])
    return StatusResponse(
        tag, draw(st.sampled_from(words_)), draw(st.one_of(st.none(), codes)), draw(status_text)
    )


addresses = st.builds(Address, st.none() | text, st.none() | text, st.none() | text, st.none() | text)
addr_lists = st.none() | st.lists(addresses, max_size=3).map(tuple)
envelopes = st.builds(
    Envelope, st.none() | text, st.none() | text, addr_lists, addr_lists, addr_lists, addr_lists,
    addr_lists, addr_lists, st.none() | text, st.none() | text,
)  # fmt: skip
section_keys = st.sampled_from(
    ["BODY[]", "BODY[]<0>", "BODY[HEADER]", "BODY[TEXT]", "BODY[1.2.MIME]", "BODY[HEADER.FIELDS (FROM TO)]",
     "BODY[2]<100>", "RFC822", "RFC822.HEADER", "RFC822.TEXT"]
)  # fmt: skip


@st.composite
def fetch_items(draw: Any) -> dict[str, Any]:
    items: dict[str, Any] = {}
    choices = draw(st.lists(st.sampled_from(
        ["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "SECTION",
         "SECTION", "X-RAW"]), max_size=8))  # fmt: skip
    for c in choices:
        if c == "UID":
            items["UID"] = draw(uids)
        elif c == "FLAGS":
            items["FLAGS"] = draw(flag_tuples)
        elif c == "MODSEQ":
            items["MODSEQ"] = draw(modseqs)
        elif c == "INTERNALDATE":
            items["INTERNALDATE"] = draw(datetimes)
        elif c == "RFC822.SIZE":
            items["RFC822.SIZE"] = draw(u64)
        elif c == "ENVELOPE":
            items["ENVELOPE"] = draw(envelopes)
        elif c == "BODYSTRUCTURE":
            items["BODYSTRUCTURE"] = draw(st.lists(raw_values, min_size=1, max_size=4))
        elif c == "SECTION":
            items[draw(section_keys)] = draw(st.none() | st.binary(max_size=40))
        else:
            items["X-" + draw(words).upper()] = draw(raw_values)
    return items


responses = st.one_of(
    status_responses(),
    st.builds(ContinuationRequest, line_text),
    st.builds(CapabilityData, st.lists(words, max_size=6).map(tuple)),
    st.builds(EnabledData, st.lists(upper_words, max_size=3).map(tuple)),
    st.builds(IdData, st.none() | st.lists(st.tuples(text, st.none() | text), max_size=4).map(tuple)),
    st.builds(
        NamespaceData,
        *[st.none() | st.lists(st.builds(NamespaceDesc, names, delims,
                                          st.lists(st.tuples(words, st.lists(text, max_size=2).map(tuple)),
                                                   max_size=2).map(tuple)),
                               min_size=1, max_size=2).map(tuple)] * 3,
    ),
    st.builds(
        ListData,
        st.lists(st.one_of(flags, st.sampled_from(["\\HasNoChildren", "\\Marked", "\\NonExistent"])),
                 max_size=3).map(tuple),
        delims, names,
        st.none() | st.lists(st.sampled_from(["SUBSCRIBED", "X-OTHER"]), min_size=1, max_size=2).map(tuple),
        st.none() | names,
        st.lists(st.tuples(words.map(lambda w: "X-" + w.upper()), raw_values), max_size=2,
                 unique_by=lambda kv: kv[0]).map(tuple),
        st.booleans(),
    ),
    st.builds(
        StatusData, names,
        st.dictionaries(st.sampled_from(["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                         "HIGHESTMODSEQ", "SIZE"]), u64, max_size=7)
        | st.builds(lambda d, m: {**d, "MAILBOXID": m}, st.dictionaries(st.just("UIDNEXT"), u64), objectids),
    ),
    st.builds(FlagsData, flag_tuples),
    st.builds(ExistsData, st.integers(min_value=0, max_value=MAX_UID)),
    st.builds(RecentData, st.integers(min_value=0, max_value=MAX_UID)),
    st.builds(ExpungeData, uids),
    st.builds(VanishedData, uidsets, st.booleans()),
    st.builds(FetchData, uids, fetch_items()),
    st.builds(SearchData, st.lists(uids, max_size=10).map(tuple), st.none() | modseqs),
    st.builds(
        ESearchData, st.none() | tags, st.booleans(),
        st.dictionaries(st.sampled_from(["MIN", "MAX", "COUNT", "MODSEQ"]), u64, max_size=4)
        | st.builds(lambda d, s: {**d, "ALL": s}, st.dictionaries(st.just("COUNT"), u64), uidsets),
    ),
    st.builds(lambda w, v: UnknownResponse(b"* X-" + w.upper().encode() + b" " + v.encode() + b"\r\n"),
              words, raw_atoms),
)  # fmt: skip


@FAST
@given(responses)
def test_every_response_type_round_trips(r: Any) -> None:
    wire = serialize_response(r)
    assert wire.endswith(b"\r\n")
    assert parse_response(wire) == r
    assert serialize_response(parse_response(wire)) == wire  # canonical form is stable


@FAST
@given(
    st.lists(responses, min_size=1, max_size=6), st.lists(st.integers(min_value=1, max_value=64), min_size=1)
)
def test_split_anywhere_gives_the_same_responses(rs: list[Any], cuts: list[int]) -> None:
    wire = b"".join(serialize_response(r) for r in rs)
    p = ResponseParser()
    got: list[Any] = []
    i = 0
    k = 0
    while i < len(wire):
        n = cuts[k % len(cuts)]
        k += 1
        p.feed(wire[i : i + n])
        i += n
        got.extend(p.events())
    assert got == rs
    assert feed_responses(wire, chunk=1) == rs


# -- commands -------------------------------------------------------------------------------

search_leaf = st.one_of(
    st.sampled_from(["ALL", "SEEN", "UNSEEN", "DELETED", "FLAGGED", "NEW", "OLD", "RECENT", "DRAFT",
                     "ANSWERED", "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED"]).map(SearchKey),
    st.builds(lambda k, v: SearchKey(k, (v,)),
              st.sampled_from(["FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"]), text),
    st.builds(lambda k, v: SearchKey(k, (v,)), st.sampled_from(["KEYWORD", "UNKEYWORD"]),
              flags.filter(lambda f: not f.startswith("\\"))),
    st.builds(lambda k, d: SearchKey(k, (d,)),
              st.sampled_from(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"]),
              st.dates(min_value=date(1000, 1, 1))),
    st.builds(lambda k, n: SearchKey(k, (n,)), st.sampled_from(["LARGER", "SMALLER", "OLDER", "YOUNGER"]), u64),
    st.builds(lambda f, v: SearchKey("HEADER", (f, v)), text, text),
    st.builds(lambda s: SearchKey("UID", (s,)), seqsets),
    st.builds(lambda s: SearchKey("SEQSET", (s,)), seqsets),
    st.builds(lambda m: SearchKey("MODSEQ", (m,)), u64),
    st.builds(lambda e, t, m: SearchKey("MODSEQ", (e, t, m)), text, st.sampled_from(["priv", "shared", "all"]),
              u64),
)  # fmt: skip
search_keys = st.recursive(
    search_leaf,
    lambda inner: st.one_of(
        st.builds(lambda k: SearchKey("NOT", (k,)), inner),
        st.builds(lambda a, b: SearchKey("OR", (a, b)), inner, inner),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: SearchKey("AND", tuple(ks))),
    ),
    max_leaves=8,
)
header_fields = st.lists(st.from_regex(r"[A-Z][A-Z0-9-]{0,10}", fullmatch=True).filter(lambda s: s != "NIL"),
                         min_size=1, max_size=3).map(tuple)  # fmt: skip


@st.composite
def fetch_bodies(draw: Any) -> FetchBody:
    part = tuple(draw(st.lists(st.integers(min_value=1, max_value=30), max_size=3)))
    choices = ["", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"] + (["MIME"] if part else [])
    txt = draw(st.sampled_from(choices))
    fields = draw(header_fields) if txt.startswith("HEADER.FIELDS") else ()
    partial = draw(st.none() | st.tuples(st.integers(0, MAX_UID), st.integers(1, MAX_UID)))
    return FetchBody(draw(st.booleans()), part, txt, fields, partial)


fetch_atts = st.lists(
    st.one_of(st.sampled_from(["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                               "BODYSTRUCTURE", "BODY", "RFC822.HEADER"]), fetch_bodies()),
    min_size=1, max_size=4,
).map(tuple)  # fmt: skip


@st.composite
def fetch_commands(draw: Any) -> FetchCommand:
    items = draw(st.sampled_from([("ALL",), ("FAST",), ("FULL",)]) | fetch_atts)
    uid = draw(st.booleans())
    changed = draw(st.none() | u64)
    vanished = uid and changed is not None and draw(st.booleans())
    return FetchCommand(draw(tags), draw(seqsets), items, uid, changed, vanished)


@st.composite
def selects(draw: Any) -> SelectCommand:
    q = None
    if draw(st.booleans()):
        known = draw(st.none() | seqsets)
        match = draw(st.none() | st.tuples(seqsets, seqsets)) if known is not None else None
        q = QresyncParams(draw(uids), draw(modseqs), known, match)
    return SelectCommand(draw(tags), draw(cmd_mailboxes), draw(st.booleans()), draw(st.booleans()), q)


@st.composite
def notify_groups(draw: Any) -> NotifyGroup:
    filt = draw(st.sampled_from(["selected", "selected-delayed", "personal", "inboxes", "subscribed",
                                 "subtree", "mailboxes"]))  # fmt: skip
    mboxes = (
        tuple(draw(st.lists(cmd_mailboxes, min_size=1, max_size=3)))
        if filt in ("subtree", "mailboxes")
        else ()
    )
    evs = draw(
        st.none()
        | st.lists(
            st.one_of(
                st.sampled_from(["MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
                                 "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange"]
                                ).map(NotifyEvent),
                st.builds(lambda a: NotifyEvent("MessageNew", a), fetch_atts),
            ),
            min_size=1, max_size=4,
        ).map(tuple)
    )  # fmt: skip
    return NotifyGroup(filt, mboxes, evs)


status_items = st.lists(
    st.sampled_from(
        ["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "MAILBOXID"]
    ),
    min_size=1,
    max_size=4,
).map(tuple)

commands = st.one_of(
    st.builds(lambda c, t: c(t), st.sampled_from([CapabilityCommand, NoopCommand, LogoutCommand, StartTlsCommand,
                                                  NamespaceCommand, CheckCommand, CloseCommand, UnselectCommand,
                                                  IdleCommand]), tags),
    st.builds(IdCommand, tags, st.none() | st.lists(st.tuples(text, st.none() | text), max_size=3).map(tuple)),
    st.builds(LoginCommand, tags, text, text),
    st.builds(AuthenticateCommand, tags, upper_words, st.none() | st.binary(max_size=30)),
    st.builds(EnableCommand, tags, st.lists(upper_words, min_size=1, max_size=3).map(tuple)),
    selects(),
    st.builds(lambda c, t, m: c(t, m), st.sampled_from([CreateCommand, DeleteCommand, SubscribeCommand,
                                                        UnsubscribeCommand]), tags, cmd_mailboxes),
    st.builds(RenameCommand, tags, cmd_mailboxes, cmd_mailboxes),
    st.builds(
        ListCommand, tags, names, st.lists(names, min_size=1, max_size=3).map(tuple),
        st.lists(st.sampled_from(["SUBSCRIBED", "RECURSIVEMATCH", "REMOTE"]), unique=True, max_size=3).map(tuple),
        st.none() | u64,
        st.lists(st.sampled_from(["SUBSCRIBED", "CHILDREN"]), unique=True, max_size=2).map(tuple),
        st.none() | status_items,
    ),
    st.builds(LsubCommand, tags, names, names),
    st.builds(StatusCommand, tags, cmd_mailboxes, status_items),
    st.builds(AppendCommand, tags, cmd_mailboxes, st.binary(max_size=200), flag_tuples, st.none() | datetimes),
    st.builds(ExpungeCommand, tags, st.none() | uidsets),
    st.builds(SearchCommand, tags, st.lists(search_keys, min_size=1, max_size=3).map(tuple), st.booleans(),
              st.none() | st.sampled_from(["UTF-8", "US-ASCII"]),
              st.none() | st.lists(st.sampled_from(["MIN", "MAX", "COUNT", "ALL"]), unique=True).map(tuple)),
    fetch_commands(),
    st.builds(StoreCommand, tags, seqsets, st.sampled_from(["+", "-", ""]), flag_tuples, st.booleans(),
              st.booleans(), st.none() | u64),
    st.builds(lambda c, t, s, m, u: c(t, s, m, u), st.sampled_from([CopyCommand, MoveCommand]), tags, seqsets,
              cmd_mailboxes, st.booleans()),
    st.builds(lambda t, g, s: NotifyCommand(t, g, s and g is not None), tags,
              st.none() | st.lists(notify_groups(), min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(CompressCommand, tags),
)  # fmt: skip


@FAST
@given(commands)
def test_every_command_round_trips(cmd: Any) -> None:
    wire = serialize_command(cmd, literal_plus=True)
    assert parse_command(wire) == cmd
    # the synchronizing form, sent chunk by chunk as a client does after each "+"
    p = CommandParser()
    chunks = command_chunks(cmd)
    events: list[Any] = []
    for c in chunks:
        p.feed(c)
        while (ev := p.next_event()) is not NEED_DATA:
            events.append(ev)
    assert events[-1] == cmd
    assert all(isinstance(e, ContinuationNeeded) for e in events[:-1])
    assert len(events) == len(chunks)


@FAST
@given(
    st.lists(commands, min_size=1, max_size=5), st.lists(st.integers(min_value=1, max_value=64), min_size=1)
)
def test_split_anywhere_gives_the_same_commands(cmds: list[Any], cuts: list[int]) -> None:
    """IDLE is followed by DONE and AUTHENTICATE (without SASL-IR) by one SASL line: the parser
    is switched to raw mode exactly as a server does, whatever the chunking."""
    wire = b""
    expected: list[Any] = []
    for c in cmds:
        wire += serialize_command(c, literal_plus=True)
        expected.append(c)
        if isinstance(c, IdleCommand):
            wire += IDLE_DONE
            expected.append(RawLine(b"DONE"))
        elif isinstance(c, AuthenticateCommand) and c.initial_response is None:
            wire += encode_sasl_response(b"\0user\0pw")
            expected.append(RawLine(encode_sasl_response(b"\0user\0pw")[:-2]))
    p = CommandParser()
    got: list[Any] = []
    i = k = 0
    while i < len(wire):
        n = cuts[k % len(cuts)]
        k += 1
        p.feed(wire[i : i + n])
        i += n
        while (ev := p.next_event()) is not NEED_DATA:
            got.append(ev)
            if isinstance(ev, IdleCommand) or (
                isinstance(ev, AuthenticateCommand) and ev.initial_response is None
            ):
                p.expect_raw_line()
    assert got == expected


# -- robustness ----------------------------------------------------------------------------


def _drain(p: Any) -> int:
    n = 0
    while True:
        try:
            if p.next_event() is NEED_DATA:
                return n
        except ImapProtocolError:
            n += 1


garbage = st.lists(
    st.one_of(st.binary(max_size=30), st.sampled_from([b"\r\n", b"{3}\r\n", b"{5+}\r\n", b"(", b")", b'"', b"\\",
                                                        b"* ", b"a1 ", b"[", b"]", b"NIL", b"* 1 FETCH (",
                                                        b"BODY[", b"UID ", b"LIST ", b"+ "])),
    max_size=30,
).map(b"".join)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(garbage, st.integers(min_value=1, max_value=50))
def test_random_bytes_only_raise_codec_errors(data: bytes, chunk: int) -> None:
    for parser in (ResponseParser(max_line_bytes=200, max_literal_bytes=100),
                   CommandParser(max_line_bytes=200, max_literal_bytes=100)):  # fmt: skip
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            _drain(parser)
        parser.feed(b"\r\n")
        _drain(parser)


@settings(max_examples=300, deadline=None)
@given(st.one_of(responses.map(serialize_response), commands.map(serialize_command)), st.data())
def test_mutated_valid_lines_only_raise_codec_errors(wire: bytes, data: Any) -> None:
    b = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "del", "ins"]))
        if not b:
            break
        i = data.draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[i] = data.draw(st.integers(0, 255))
        elif op == "del":
            del b[i]
        else:
            b.insert(i, data.draw(st.sampled_from(b'(){}"\\[]* 0+\r\n')))
    for fn in (parse_response, parse_command):
        try:
            fn(bytes(b) + b"\r\n")
        except ImapProtocolError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.lists(responses, min_size=1, max_size=5), st.integers(min_value=20, max_value=120))
def test_limits_are_enforced_and_parser_recovers(rs: list[Any], limit: int) -> None:
    """With a small line limit, long responses become ImapLimitErrors and every short one still parses."""
    wire = b"".join(serialize_response(r) for r in rs) + b"zz OK end\r\n"
    evs = feed_responses(wire, chunk=7, max_line_bytes=limit, max_literal_bytes=limit)
    assert evs[-1] == StatusResponse("zz", "OK", None, "end")
    assert all(not isinstance(e, ImapProtocolError) or isinstance(e, ImapLimitError) for e in evs)
    delivered = [e for e in evs[:-1] if not isinstance(e, ImapProtocolError)]
    it = iter(rs)
    assert all(any(d == r for r in it) for d in delivered)  # an in-order subsequence, intact
    short = [r for r in rs if len(serialize_response(r)) <= limit]
    assert all(r in delivered for r in short)  # anything within every limit gets through
    assert errors_equal(evs, feed_responses(wire, chunk=1, max_line_bytes=limit, max_literal_bytes=limit))
