"""Readers: the arguments of each client command, from tokens to a typed command (server side).

One function per command shape, named for it (`read_list`, `read_select`, ...); `command_specs`
pairs each with its command, and `command_parser` frames the line and calls it. A reader raises
`BadArgs` (or `BadMailboxName`) with a short reason; the parser adds the tag and command name.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ._lexer import RawValue, dec, text_of, tokenize
from .commands import *  # noqa: F403  (h11 style: the value classes, by their own __all__)
from .datetimes import parse_date, parse_datetime
from .errors import ImapProtocolError
from .mutf7 import decode_mailbox
from .seqset import SequenceSet

Reader = Callable[[str, "Args", bool], Command]

_DIGITS = re.compile(r"[0-9]{1,20}\Z")
_SEQSET_CHARS = re.compile(r"[0-9*][0-9*:,]*\Z")
_SECTION_RE = re.compile(
    r"(BODY|BODY\.PEEK)\[((?:[1-9][0-9]{0,9}\.)*(?:[1-9][0-9]{0,9})?)\.?"
    r"(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?( ?\((.*)\))?\]"
    r"(?:<([0-9]{1,10})\.([0-9]{1,10})>)?\Z",
    re.S | re.I,
)
_NOTIFY_EVENTS = {
    n.upper(): n
    for n in (
        "MessageNew",
        "MessageExpunge",
        "FlagChange",
        "AnnotationChange",
        "MailboxName",
        "SubscriptionChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
    )
}
_NOTIFY_FILTERS = frozenset(
    {"selected", "selected-delayed", "personal", "inboxes", "subscribed", "subtree", "mailboxes"}
)
_SEARCH_NOARG = frozenset(
    "ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED UNDRAFT "
    "UNFLAGGED UNSEEN".split()
)
_SEARCH_STR = frozenset("BCC BODY CC FROM SUBJECT TEXT TO KEYWORD UNKEYWORD".split())
_SEARCH_DATE = frozenset("BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE".split())
_SEARCH_NUM = frozenset("LARGER SMALLER OLDER YOUNGER".split())
_MAX_MODSEQ = 2**63 - 1
_MAX_UID = 2**32 - 1


class BadArgs(Exception):
    """Bad arguments; the parser turns it into BadCommandError with the tag and command name."""


class BadMailboxName(BadArgs):
    """A mailbox name that is not modified UTF-7; the parser raises InvalidMailboxNameError."""


@dataclass(slots=True)
class Args:
    """A cursor over the tokenized arguments of one command."""

    vals: list[RawValue]
    i: int = 0
    cmd: str = field(default="")

    def more(self) -> bool:
        return self.i < len(self.vals)

    def peek(self) -> RawValue:
        return self.vals[self.i] if self.i < len(self.vals) else _END

    def take(self, what: str) -> RawValue:
        if self.i >= len(self.vals):
            raise BadArgs(f"missing {what}")
        v = self.vals[self.i]
        self.i += 1
        return v

    def end(self) -> None:
        if self.i < len(self.vals):
            raise BadArgs("unexpected extra arguments")


_END: RawValue = ["<end>"]  # a unique object never produced by the tokenizer


def _options(v: RawValue, what: str) -> Iterator[tuple[str, Args]]:
    """Each name of a parenthesised option list (upper case), with the cursor just after it: an
    option that takes a value takes it from there."""
    cur = Args(_list(v, f"{what}s"), 0, what)
    while cur.more():
        yield _atom(cur.take(what), what).upper(), cur


def _astring(v: RawValue, what: str) -> str:
    text = text_of(v)
    if text is None:
        raise BadArgs(f"{what} must be a string")
    return text


def _atom(v: RawValue, what: str) -> str:
    if not isinstance(v, str):
        raise BadArgs(f"{what} must be an atom")
    return v


def _mailbox(v: RawValue, what: str = "mailbox name") -> str:
    if isinstance(v, list):
        raise BadArgs(f"{what} must be a string")
    b = v if isinstance(v, bytes) else ("NIL" if v is None else v).encode("ascii")
    try:
        name = decode_mailbox(b)
    except ImapProtocolError as e:
        raise BadMailboxName(f"{what} is not valid modified UTF-7: {e.message}") from None
    return "INBOX" if name.upper() == "INBOX" else name


def _pattern(v: RawValue) -> str:
    if isinstance(v, list):
        raise BadArgs("mailbox pattern must be a string")
    b = v if isinstance(v, bytes) else ("NIL" if v is None else v).encode("ascii")
    try:
        return decode_mailbox(b)
    except ImapProtocolError:
        # As Dovecot: LIST with a pattern that is not modified UTF-7 is OK; taken as it is, it
        # matches no mailbox (every stored name round-trips through modified UTF-7).
        return b.decode("ascii", "replace")


def _number(v: RawValue, what: str, limit: int = _MAX_MODSEQ, *, nz: bool = False) -> int:
    if not isinstance(v, str) or not _DIGITS.match(v):
        raise BadArgs(f"{what} must be a number")
    n = int(v)
    if n > limit or (nz and n == 0):
        raise BadArgs(f"{what} out of range")
    return n


def _seqset(v: RawValue, what: str = "sequence set") -> SequenceSet:
    if not isinstance(v, str) or not _SEQSET_CHARS.match(v):
        raise BadArgs(f"{what} expected")
    try:
        return SequenceSet.parse(v)
    except ImapProtocolError as e:
        raise BadArgs(f"{what}: {e.message}") from None


def _list(v: RawValue, what: str) -> list[RawValue]:
    if not isinstance(v, list):
        raise BadArgs(f"{what} must be a parenthesised list")
    return v


def _flag(v: RawValue) -> str:
    """A flag is an atom; NIL tokenizes as nil but is the keyword "NIL" here (as Dovecot takes it)."""
    return "NIL" if v is None else _atom(v, "flag")


def _flags(v: RawValue) -> tuple[str, ...]:
    return tuple(_flag(f) for f in _list(v, "flag list"))


def _words(v: RawValue, what: str) -> tuple[str, ...]:
    return tuple(_atom(x, what).upper() for x in _list(v, what))


# -- fetch attributes ---------------------------------------------------------------------


def _fetch_att(v: RawValue) -> FetchAtt:
    a = _atom(v, "fetch attribute").upper()
    if "[" not in a:
        return a
    m = _SECTION_RE.match(v if isinstance(v, str) else "")
    if m is None:
        what = "body section in" if a.startswith("BODY") else "fetch attribute (BINARY is not supported)"
        raise BadArgs(f"bad {what} {a}")
    kind, part, text, paren, inner, origin, count = m.groups()
    text = (text or "").upper()
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        if paren is None:
            raise BadArgs("HEADER.FIELDS needs a list of field names")
        b = inner.encode("utf-8", "surrogateescape")
        toks = tokenize(b, 0, len(b))
        if not toks:
            raise BadArgs("HEADER.FIELDS needs at least one field name")
        fields = tuple(_astring(t, "header field name").upper() for t in toks)
    elif paren is not None:
        raise BadArgs("only HEADER.FIELDS takes a field list")
    if text == "MIME" and not part:
        raise BadArgs("MIME needs a part number")
    parts = tuple(int(p) for p in part.split(".") if p) if part else ()
    if m.group(2) and m.group(2).endswith(".") and not text:
        raise BadArgs("bad section")
    partial = None
    if origin is not None:
        partial = (int(origin), int(count))
        if partial[1] == 0:
            raise BadArgs("partial count must be non-zero")
    return FetchBody(kind.upper() == "BODY.PEEK", parts, text, fields, partial)


def _fetch_atts(v: RawValue) -> tuple[FetchAtt, ...]:
    if isinstance(v, list):
        if not v:
            raise BadArgs("empty fetch attribute list")
        return tuple(_fetch_att(x) for x in v)
    return (_fetch_att(v),)


# -- search criteria (iterative: NOT NOT NOT ... cannot exhaust the stack) -----------------


@dataclass(slots=True)
class _PendingOp:
    op: str
    need: int
    args: list[SearchArg]
    depth: int


def _search_key_args(name: str, toks: list[RawValue], i: int) -> tuple[SearchKey, int]:
    def arg() -> RawValue:
        if i >= len(toks):
            raise BadArgs(f"{name} needs an argument")
        return toks[i]

    if name in _SEARCH_NOARG:
        return SearchKey(name), i
    if name in _SEARCH_STR:
        a = arg()
        val = _atom(a, name) if name in ("KEYWORD", "UNKEYWORD") else _astring(a, name)
        return SearchKey(name, (val,)), i + 1
    if name in _SEARCH_DATE:
        a = arg()
        if isinstance(a, bytes):
            a = a.decode("ascii", "replace")
        if not isinstance(a, str):
            raise BadArgs(f"{name} needs a date")
        try:
            return SearchKey(name, (parse_date(a),)), i + 1
        except ImapProtocolError:
            raise BadArgs(f"{name} needs a date like 1-Feb-1994") from None
    if name in _SEARCH_NUM:
        return SearchKey(name, (_number(arg(), name, _MAX_MODSEQ),)), i + 1
    if name == "HEADER":
        a = arg()
        if i + 1 >= len(toks):
            raise BadArgs("HEADER needs a field name and a value")
        return SearchKey(name, (_astring(a, "header field"), _astring(toks[i + 1], "header value"))), i + 2
    if name == "UID":
        return SearchKey(name, (_seqset(arg(), "UID set"),)), i + 1
    if name == "MODSEQ":
        a = arg()
        if isinstance(a, bytes):  # entry-name entry-type-req mod-sequence-valzer
            if i + 2 >= len(toks):
                raise BadArgs("MODSEQ entry needs a type and a mod-sequence")
            etype = _atom(toks[i + 1], "MODSEQ entry type").lower()
            if etype not in ("priv", "shared", "all"):
                raise BadArgs("MODSEQ entry type must be priv, shared or all")
            return SearchKey(name, (dec(a), etype, _number(toks[i + 2], "MODSEQ"))), i + 3
        return SearchKey(name, (_number(a, "MODSEQ"),)), i + 1
    raise BadArgs(f"unknown search key {name}")


def parse_search_keys(toks: list[RawValue]) -> tuple[SearchKey, ...]:
    """Search keys from tokens, with explicit stacks for groups and NOT/OR operands."""
    result: list[SearchArg] = []
    frames: list[tuple[list[RawValue], list[int], list[SearchArg]]] = [(toks, [0], result)]
    ops: list[_PendingOp] = []

    def emit(key: SearchKey) -> None:
        while ops and ops[-1].depth == len(frames):
            op = ops[-1]
            op.args.append(key)
            if len(op.args) < op.need:
                return
            ops.pop()
            key = SearchKey(op.op, tuple(op.args))
        frames[-1][2].append(key)

    while True:
        ftoks, fpos, fout = frames[-1]
        if fpos[0] >= len(ftoks):
            if ops and ops[-1].depth == len(frames):
                raise BadArgs(f"{ops[-1].op} is missing a search key")
            if len(frames) == 1:
                break
            frames.pop()
            emit(SearchKey("AND", tuple(fout)))
            continue
        t = ftoks[fpos[0]]
        fpos[0] += 1
        if isinstance(t, list):
            if not t:
                raise BadArgs("empty search key group")
            frames.append((t, [0], []))
            continue
        if not isinstance(t, str):
            raise BadArgs("search key expected")
        name = t.upper()
        if name in ("NOT", "OR"):
            ops.append(_PendingOp(name, 1 if name == "NOT" else 2, [], len(frames)))
            continue
        if _SEQSET_CHARS.match(t):
            emit(SearchKey("SEQSET", (_seqset(t),)))
            continue
        key, fpos[0] = _search_key_args(name, ftoks, fpos[0])
        emit(key)
    if not result:
        raise BadArgs("missing search criteria")
    return tuple(k for k in result if isinstance(k, SearchKey))


# -- per-command readers --------------------------------------------------------


def read_no_args(cls: Callable[[str], Command]) -> Reader:
    def p(tag: str, a: Args, uid: bool) -> Command:
        a.end()
        return cls(tag)

    return p


def read_id(tag: str, a: Args, uid: bool) -> Command:
    v = a.take("ID parameter list")
    a.end()
    if v is None:
        return IdCommand(tag, None)
    lst = _list(v, "ID parameters")
    if len(lst) % 2:
        raise BadArgs("ID parameters come in pairs")
    pairs = []
    for i in range(0, len(lst), 2):
        k = lst[i]
        if not isinstance(k, bytes):
            raise BadArgs("ID field name must be a string")
        val = lst[i + 1]
        if isinstance(val, list):
            raise BadArgs("ID value must be a string or NIL")
        pairs.append((dec(k), None if val is None else _astring(val, "ID value")))
    return IdCommand(tag, tuple(pairs))


def read_login(tag: str, a: Args, uid: bool) -> Command:
    user = _astring(a.take("user name"), "user name")
    pw = _astring(a.take("password"), "password")
    a.end()
    return LoginCommand(tag, user, pw)


def read_authenticate(tag: str, a: Args, uid: bool) -> Command:
    mech = _atom(a.take("SASL mechanism"), "SASL mechanism").upper()
    ir: bytes | None = None
    if a.more():
        v = a.take("initial response")
        if not isinstance(v, str):
            raise BadArgs("initial response must be base64")
        if v == "=":
            ir = b""
        else:
            try:
                ir = binascii.a2b_base64(v.encode("ascii"), strict_mode=True)
            except (binascii.Error, ValueError):
                raise BadArgs("initial response is not valid base64") from None
    a.end()
    return AuthenticateCommand(tag, mech, ir)


def read_enable(tag: str, a: Args, uid: bool) -> Command:
    if not a.more():
        raise BadArgs("ENABLE needs at least one capability")
    caps = []
    while a.more():
        caps.append(_atom(a.take("capability"), "capability").upper())
    return EnableCommand(tag, tuple(caps))


def read_select(readonly: bool) -> Reader:
    def p(tag: str, a: Args, uid: bool) -> Command:
        mbox = _mailbox(a.take("mailbox name"))
        condstore = False
        qresync = None
        if a.more():
            for name, opt in _options(a.take("select parameters"), "select parameter"):
                if name == "CONDSTORE":
                    condstore = True
                elif name == "QRESYNC":
                    if not opt.more():
                        raise BadArgs("QRESYNC needs parameters")
                    q = _list(opt.take("QRESYNC parameters"), "QRESYNC parameters")
                    if not 2 <= len(q) <= 4:
                        raise BadArgs("QRESYNC needs (uidvalidity modseq [known-uids [seq-match]])")
                    known = _seqset(q[2], "known UIDs") if len(q) > 2 else None
                    match = None
                    if len(q) == 4:
                        sm = _list(q[3], "sequence match data")
                        if len(sm) != 2:
                            raise BadArgs("sequence match data needs (seqs uids)")
                        match = (_seqset(sm[0]), _seqset(sm[1]))
                    qresync = QresyncParams(
                        _number(q[0], "UIDVALIDITY", _MAX_UID, nz=True),
                        _number(q[1], "mod-sequence", nz=True),
                        known,
                        match,
                    )
                else:
                    raise BadArgs(f"unknown select parameter {name}")
        a.end()
        return SelectCommand(tag, mbox, readonly, condstore, qresync)

    return p


def read_mailbox(cls: Callable[[str, str], Command]) -> Reader:
    def p(tag: str, a: Args, uid: bool) -> Command:
        m = _mailbox(a.take("mailbox name"))
        a.end()
        return cls(tag, m)

    return p


def read_rename(tag: str, a: Args, uid: bool) -> Command:
    old = _mailbox(a.take("existing mailbox name"))
    new = _mailbox(a.take("new mailbox name"))
    a.end()
    return RenameCommand(tag, old, new)


def read_list(tag: str, a: Args, uid: bool) -> Command:
    selection: list[str] = []
    changedsince: int | None = None
    if isinstance(a.peek(), list):
        for name, opt in _options(a.take("selection options"), "selection option"):
            # RFC 5258 names each option once; "last one wins" would hide a client bug.
            if name in selection or (name == "CHANGEDSINCE" and changedsince is not None):
                raise BadArgs(f"selection option {name} given twice")
            if name == "CHANGEDSINCE":
                arg = opt.peek()
                if not isinstance(arg, list) or len(arg) != 1 or arg is _END:
                    raise BadArgs("CHANGEDSINCE needs (mod-sequence-value)")
                opt.take("CHANGEDSINCE")
                changedsince = _number(arg[0], "CHANGEDSINCE mod-sequence")
            else:
                selection.append(name)
    ref = _mailbox(a.take("reference name"), "reference name")
    if ref == "INBOX":  # reference is not a mailbox: keep it as sent
        ref = _pattern(a.vals[a.i - 1])
    pv = a.take("mailbox pattern")
    if isinstance(pv, list):
        if not pv:
            raise BadArgs("empty pattern list")
        patterns = tuple(_pattern(x) for x in pv)
    else:
        patterns = (_pattern(pv),)
    return_opts: list[str] = []
    return_status: tuple[str, ...] | None = None
    if a.more():
        kw = a.take("RETURN")
        if not isinstance(kw, str) or kw.upper() != "RETURN":
            raise BadArgs("expected RETURN")
        for name, opt in _options(a.take("return options"), "return option"):
            if name == "STATUS":
                if not opt.more():
                    raise BadArgs("RETURN STATUS needs a list of items")
                return_status = _words(opt.take("STATUS"), "status item")
                if not return_status:
                    raise BadArgs("RETURN STATUS needs at least one item")
            else:
                return_opts.append(name)
    a.end()
    return ListCommand(tag, ref, patterns, tuple(selection), changedsince, tuple(return_opts), return_status)


def read_lsub(tag: str, a: Args, uid: bool) -> Command:
    ref = _pattern(a.take("reference name"))
    pat = _pattern(a.take("mailbox pattern"))
    a.end()
    return LsubCommand(tag, ref, pat)


def read_status(tag: str, a: Args, uid: bool) -> Command:
    m = _mailbox(a.take("mailbox name"))
    items = _words(a.take("status items"), "status item")
    if not items:
        raise BadArgs("STATUS needs at least one item")
    a.end()
    return StatusCommand(tag, m, items)


def read_append(tag: str, a: Args, uid: bool) -> Command:
    m = _mailbox(a.take("mailbox name"))
    flags: tuple[str, ...] = ()
    dt = None
    if isinstance(a.peek(), list):
        flags = _flags(a.take("flags"))
    if isinstance(a.peek(), bytes) and a.i + 1 < len(a.vals):
        raw_dt = a.take("date-time")
        assert isinstance(raw_dt, bytes)
        try:
            dt = parse_datetime(raw_dt.decode("ascii", "replace"))
        except ImapProtocolError:
            raise BadArgs("bad APPEND date-time") from None
    msg = a.take("message literal")
    if not isinstance(msg, bytes):
        raise BadArgs("APPEND message must be a literal")
    a.end()
    return AppendCommand(tag, m, msg, flags, dt)


def read_expunge(tag: str, a: Args, uid: bool) -> Command:
    if uid:
        s = _seqset(a.take("UID set"), "UID set")
        a.end()
        return ExpungeCommand(tag, s)
    a.end()
    return ExpungeCommand(tag)


def read_search(tag: str, a: Args, uid: bool) -> Command:
    ret: tuple[str, ...] | None = None
    charset = None
    p = a.peek()
    if isinstance(p, str) and p.upper() == "RETURN":
        a.take("RETURN")
        ret = _words(a.take("search return options"), "search return option")
    p = a.peek()
    if isinstance(p, str) and p.upper() == "CHARSET":
        a.take("CHARSET")
        charset = _astring(a.take("charset"), "charset").upper()
    keys = parse_search_keys(a.vals[a.i :])
    return SearchCommand(tag, keys, uid, charset, ret)


def read_fetch(tag: str, a: Args, uid: bool) -> Command:
    s = _seqset(a.take("sequence set"))
    atts = _fetch_atts(a.take("fetch attributes"))
    changedsince = None
    vanished = False
    if a.more():
        for name, opt in _options(a.take("fetch modifiers"), "fetch modifier"):
            if name == "CHANGEDSINCE":
                if not opt.more():
                    raise BadArgs("CHANGEDSINCE needs a mod-sequence")
                changedsince = _number(opt.take("CHANGEDSINCE"), "CHANGEDSINCE mod-sequence")
            elif name == "VANISHED":
                vanished = True
            else:
                raise BadArgs(f"unknown fetch modifier {name}")
    a.end()
    if vanished and (not uid or changedsince is None):
        raise BadArgs("VANISHED needs UID FETCH with CHANGEDSINCE")
    return FetchCommand(tag, s, atts, uid, changedsince, vanished)


def read_store(tag: str, a: Args, uid: bool) -> Command:
    s = _seqset(a.take("sequence set"))
    unchangedsince = None
    if isinstance(a.peek(), list):
        mods = _list(a.take("store modifiers"), "store modifiers")
        if len(mods) != 2 or not isinstance(mods[0], str) or mods[0].upper() != "UNCHANGEDSINCE":
            raise BadArgs("store modifier must be (UNCHANGEDSINCE n)")
        unchangedsince = _number(mods[1], "UNCHANGEDSINCE mod-sequence")
    item = _atom(a.take("store item"), "store item").upper()
    mode = item[0] if item[:1] in ("+", "-") else ""
    rest = item[len(mode) :]
    if rest not in ("FLAGS", "FLAGS.SILENT"):
        raise BadArgs("store item must be [+|-]FLAGS[.SILENT]")
    if isinstance(a.peek(), list):
        flags = _flags(a.take("flags"))
    else:
        flags = tuple(_flag(a.take("flag")) for _ in range(len(a.vals) - a.i))
        if not flags:
            raise BadArgs("missing flags")
    a.end()
    return StoreCommand(tag, s, mode, flags, rest.endswith(".SILENT"), uid, unchangedsince)


def read_copy_move(cls: Callable[..., Command]) -> Reader:
    def p(tag: str, a: Args, uid: bool) -> Command:
        s = _seqset(a.take("sequence set"))
        m = _mailbox(a.take("mailbox name"))
        a.end()
        return cls(tag, s, m, uid)

    return p


def _notify_events(toks: list[RawValue]) -> tuple[NotifyEvent, ...]:
    out: list[NotifyEvent] = []
    j = 0
    while j < len(toks):
        name = _atom(toks[j], "NOTIFY event")
        j += 1
        canon = _NOTIFY_EVENTS.get(name.upper(), name)
        atts = None
        if j < len(toks) and isinstance(toks[j], list):
            if canon != "MessageNew":
                raise BadArgs("only MessageNew takes fetch attributes")
            atts = _fetch_atts(toks[j])
            j += 1
        out.append(NotifyEvent(canon, atts))
    if not out:
        raise BadArgs("empty NOTIFY event list")
    return tuple(out)


def read_notify(tag: str, a: Args, uid: bool) -> Command:
    kw = _atom(a.take("SET or NONE"), "NOTIFY argument").upper()
    if kw == "NONE":
        a.end()
        return NotifyCommand(tag, None)
    if kw != "SET":
        raise BadArgs("NOTIFY needs SET or NONE")
    status = False
    p = a.peek()
    if isinstance(p, str) and p.upper() == "STATUS":
        a.take("STATUS")
        status = True
    groups = []
    if not a.more():
        raise BadArgs("NOTIFY SET needs at least one event group")
    while a.more():
        g = _list(a.take("event group"), "event group")
        if not g:
            raise BadArgs("empty event group")
        filt = _atom(g[0], "NOTIFY filter").lower()
        if filt not in _NOTIFY_FILTERS:
            raise BadArgs(f"unknown NOTIFY filter {filt}")
        j = 1
        mboxes: tuple[str, ...] = ()
        if filt in ("subtree", "mailboxes"):
            if j >= len(g):
                raise BadArgs(f"{filt} needs mailboxes")
            mv = g[j]
            j += 1
            mboxes = tuple(_mailbox(x) for x in mv) if isinstance(mv, list) else (_mailbox(mv),)
            if not mboxes:
                raise BadArgs(f"{filt} needs at least one mailbox")
        rest = g[j:]
        events: tuple[NotifyEvent, ...] | None
        if len(rest) == 1 and isinstance(rest[0], str) and rest[0].upper() == "NONE":
            events = None
        elif len(rest) == 1 and isinstance(rest[0], list):
            events = _notify_events(rest[0])
        else:  # RFC 5465's original examples omit the parentheses (erratum 1804); accept both
            events = _notify_events(rest)
        groups.append(NotifyGroup(filt, mboxes, events))
    return NotifyCommand(tag, tuple(groups), status)


def read_compress(tag: str, a: Args, uid: bool) -> Command:
    mech = _atom(a.take("compression mechanism"), "compression mechanism").upper()
    a.end()
    return CompressCommand(tag, mech)
