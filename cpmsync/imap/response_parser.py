"""Incremental server-response parser (the client side), h11 style.

    p = ResponseParser()
    p.feed(data)
    while (ev := p.next_event()) is not NEED_DATA: ...

Framing is done with `bytes.find`; the common LIST and STATUS lines are typed straight from one
regular expression (the LIST-STATUS hot path), and FETCH lines item by item with one regular
expression per item (a first sync: UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE ENVELOPE and body
sections); everything else, and any line a fast path declines, goes through the tokenizer.

The value classes are imported by name, not by star import as the other codec modules do: this
module is compiled by mypyc (cpmsync/native.py), which does not resolve a star import's names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TypeVar

from ._framer import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LITERAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES, Framer
from ._lexer import RawValue, dec, text_of, tokenize, unquote
from .datetimes import parse_datetime
from .errors import ImapProtocolError
from .events import NEED_DATA, NeedData
from .mutf7 import decode_mailbox
from .responses import (
    Address,
    AppendUid,
    CapabilityData,
    CodeValue,
    ContinuationRequest,
    CopyUid,
    EnabledData,
    Envelope,
    ESearchData,
    ExistsData,
    ExpungeData,
    FetchData,
    FetchValue,
    FlagsData,
    IdData,
    ListData,
    NamespaceData,
    NamespaceDesc,
    RecentData,
    Response,
    ResponseCode,
    SearchData,
    StatusData,
    StatusResponse,
    UnknownResponse,
    VanishedData,
)
from .seqset import SequenceSet

__all__ = ["ResponseParser", "parse_response"]

_STATUS_WORDS = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})
_INT_CODES = frozenset({"UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"})
_UNTAGGED = re.compile(rb"\* (?:([0-9]{1,10}) )?([A-Za-z][A-Za-z0-9.=-]*)(?=[ \r\n])")
_TAGGED = re.compile(rb"([!#$&'*+,./0-9:;<=>?@A-Z\[\]^-z|}~-]+) ([A-Za-z]+)(?=[ \r\n])")
_CODE = re.compile(rb"\[([!#-Z^-z|}~\\-]+)(?: ([^\]\r\n]*))?\]")
_QSTR = rb'"[^"\\\r\n]*(?:\\["\\][^"\\\r\n]*)*"'  # unrolled: no per-byte alternation'
_MBOX = rb"(" + _QSTR + rb'|[^\x00-\x20\x7f-\xff(){}"\\\[\]%*]+)'
_FAST_LIST = re.compile(
    rb"\* (LIST|LSUB) \(([^()\"{}\x00-\x1f\x7f-\xff]*)\) (NIL|\"(?:[^\"\\\r\n]|\\[\"\\])\") "
    + _MBOX
    + rb"\r?\n\Z"
)
_ITEM = rb"[A-Za-z][A-Za-z0-9-]* [0-9]{1,18}"  # 19-digit values (near 2^63) take the checked path
_FAST_STATUS = re.compile(
    rb"\* STATUS " + _MBOX + rb" \(((?:" + _ITEM + rb")(?: " + _ITEM + rb")*)?\)\r?\n\Z"
)
_DIGITS = re.compile(r"[0-9]{1,20}\Z")
_MAX_MODSEQ = 2**63 - 1


def _line_end(raw: bytes) -> int:
    return len(raw) - (2 if raw.endswith(b"\r\n") else 1)


def _err(msg: str, raw: bytes, pos: int | None = None) -> ImapProtocolError:
    return ImapProtocolError(msg, position=pos, line=raw)


def _int(v: RawValue, what: str, raw: bytes, *, limit: int = 2**63 - 1) -> int:
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    if not isinstance(v, str) or not _DIGITS.match(v):
        raise _err(f"expected a number for {what}", raw)
    n = int(v)
    if n > limit:
        raise _err(f"{what} out of range", raw)
    return n


def _str(v: RawValue) -> str:
    """An astring/nstring as text (NIL -> "NIL" for astring positions is the caller's choice)."""
    text = text_of(v)
    if text is None:
        raise TypeError("expected a string")
    return text


def _nstr(v: RawValue) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):
        raise TypeError("expected a string")
    return _str(v)


def _atoms(v: RawValue) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise TypeError("expected a list")
    return tuple(_str(x) for x in v)


def mailbox_from_wire(v: RawValue | bytes) -> str:
    """A wire mailbox name (atom or string) decoded from mUTF-7; invalid mUTF-7 is kept as text."""
    if isinstance(v, list):
        raise TypeError("expected a mailbox name")
    b = v if isinstance(v, bytes) else ("NIL" if v is None else v).encode("ascii")
    try:
        return decode_mailbox(b)
    except ImapProtocolError:
        return dec(b)


def _code_value(name: str, text: str | None, raw: bytes) -> CodeValue:
    if text is None:
        return None
    if name in _INT_CODES:
        return _int(text, name, raw)
    if name == "CAPABILITY":
        return tuple(text.split())
    if name == "PERMANENTFLAGS":
        t = text.strip()
        if not (t.startswith("(") and t.endswith(")")):
            raise _err("PERMANENTFLAGS needs a list", raw)
        return tuple(t[1:-1].split())
    if name == "MODIFIED":
        return SequenceSet.parse(text)
    if name == "MAILBOXID":
        t = text.strip()
        return t[1:-1] if t.startswith("(") and t.endswith(")") else t
    if name == "APPENDUID":
        parts = text.split()
        if len(parts) != 2:
            raise _err("APPENDUID needs uidvalidity and uid-set", raw)
        return AppendUid(_int(parts[0], name, raw, limit=2**32 - 1), SequenceSet.parse(parts[1]))
    if name == "COPYUID":
        parts = text.split()
        if len(parts) != 3:
            raise _err("COPYUID needs uidvalidity and two uid-sets", raw)
        return CopyUid(
            _int(parts[0], name, raw, limit=2**32 - 1),
            SequenceSet.parse(parts[1]),
            SequenceSet.parse(parts[2]),
        )
    return text


def _status(tag: str | None, word: str, raw: bytes, pos: int) -> StatusResponse:
    end = _line_end(raw)
    code = None
    if pos < end and raw[pos] == 0x20:
        pos += 1
    if pos < end and raw[pos] == 0x5B:  # '['
        m = _CODE.match(raw, pos, end)
        if m is None:
            raise _err("malformed response code", raw, pos)
        name = m.group(1).decode("ascii").upper()
        text = m.group(2)
        code = ResponseCode(name, _code_value(name, None if text is None else dec(text), raw))
        pos = m.end()
        if pos < end and raw[pos] == 0x20:
            pos += 1
    return StatusResponse(tag, word, code, dec(raw[pos:end]))


def _list(raw: bytes, vals: list[RawValue], lsub: bool) -> ListData:
    if len(vals) not in (3, 4) or not isinstance(vals[0], list):
        raise _err("LIST needs (attributes) delimiter name", raw)
    delim = vals[1]
    if isinstance(delim, list):
        raise _err("bad LIST delimiter", raw)
    childinfo: tuple[str, ...] | None = None
    oldname: str | None = None
    extra: list[tuple[str, RawValue]] = []
    if len(vals) == 4:
        ext = vals[3]
        if not isinstance(ext, list) or len(ext) % 2:
            raise _err("bad LIST extended data", raw)
        for i in range(0, len(ext), 2):
            k = ext[i]
            v = ext[i + 1]
            if not isinstance(k, (str, bytes)):
                raise _err("bad LIST extended item tag", raw)
            key = _str(k).upper()
            if key == "CHILDINFO" and isinstance(v, list):
                childinfo = _atoms(v)
            elif key == "OLDNAME" and isinstance(v, list) and len(v) == 1:
                oldname = mailbox_from_wire(v[0])
            else:
                extra.append((key, v))
    return ListData(
        _atoms(vals[0]),
        None if delim is None else _str(delim),
        mailbox_from_wire(vals[2]),
        childinfo,
        oldname,
        tuple(extra),
        lsub,
    )


def _status_data(raw: bytes, vals: list[RawValue]) -> StatusData:
    if len(vals) != 2 or not isinstance(vals[1], list) or len(vals[1]) % 2:
        raise _err("STATUS needs mailbox (items)", raw)
    items: dict[str, int | str] = {}
    lst = vals[1]
    for i in range(0, len(lst), 2):
        k = _str(lst[i]).upper()
        v = lst[i + 1]
        if k == "MAILBOXID":
            items[k] = _str(v[0]) if isinstance(v, list) and len(v) == 1 else _str(v)
        else:
            items[k] = _int(v, k, raw)
    return StatusData(mailbox_from_wire(vals[0]), items)


def _addresses(v: RawValue) -> tuple[Address, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list):
        raise TypeError("address list")
    out = []
    for a in v:
        if not isinstance(a, list) or len(a) != 4:
            raise TypeError("address")
        out.append(Address(_nstr(a[0]), _nstr(a[1]), _nstr(a[2]), _nstr(a[3])))
    return tuple(out)


def _envelope(v: RawValue) -> Envelope:
    if not isinstance(v, list) or len(v) != 10:
        raise TypeError("envelope")
    return Envelope(
        _nstr(v[0]),
        _nstr(v[1]),
        _addresses(v[2]),
        _addresses(v[3]),
        _addresses(v[4]),
        _addresses(v[5]),
        _addresses(v[6]),
        _addresses(v[7]),
        _nstr(v[8]),
        _nstr(v[9]),
    )


def _fetch(raw: bytes, seq: int, vals: list[RawValue]) -> FetchData:
    if len(vals) != 1 or not isinstance(vals[0], list) or len(vals[0]) % 2:
        raise _err("FETCH needs a list of item value pairs", raw)
    lst = vals[0]
    items: dict[str, FetchValue] = {}
    for i in range(0, len(lst), 2):
        k = lst[i]
        v = lst[i + 1]
        if not isinstance(k, str):
            raise _err("FETCH item name must be an atom", raw)
        key = k.upper()
        val: FetchValue
        if key in ("UID", "RFC822.SIZE"):
            val = _int(v, key, raw, limit=2**32 - 1 if key == "UID" else 2**63 - 1)
        elif key == "MODSEQ":
            if not isinstance(v, list) or len(v) != 1:
                raise _err("MODSEQ needs (n)", raw)
            val = _int(v[0], key, raw)
        elif key == "FLAGS":
            val = _atoms(v)
        elif key == "INTERNALDATE":
            if not isinstance(v, bytes):
                raise _err("INTERNALDATE needs a quoted date-time", raw)
            val = parse_datetime(v.decode("ascii", "replace"))
        elif key == "ENVELOPE":
            val = _envelope(v)
        elif key.startswith(("BODY[", "RFC822", "BINARY[")) and key != "RFC822.SIZE":
            if isinstance(v, list):
                raise _err(f"{key} needs a string", raw)
            val = v.encode("ascii") if isinstance(v, str) else v
        else:
            val = v
        items[key] = val
    return FetchData(seq, items)


def _esearch(raw: bytes, vals: list[RawValue]) -> ESearchData:
    tag: str | None = None
    uid = False
    i = 0
    if vals and isinstance(vals[0], list):
        corr = vals[0]
        if len(corr) != 2 or _str(corr[0]).upper() != "TAG":
            raise _err("bad ESEARCH correlator", raw)
        tag = _str(corr[1])
        i = 1
    if i < len(vals) and isinstance(vals[i], str) and str(vals[i]).upper() == "UID":
        uid = True
        i += 1
    rest = vals[i:]
    if len(rest) % 2:
        raise _err("ESEARCH items come in pairs", raw)
    items: dict[str, int | SequenceSet | RawValue] = {}
    for j in range(0, len(rest), 2):
        k = _str(rest[j]).upper()
        v = rest[j + 1]
        if k in ("MIN", "MAX", "COUNT", "MODSEQ"):
            items[k] = _int(v, k, raw)
        elif k == "ALL" and isinstance(v, str):
            items[k] = SequenceSet.parse(v)
        else:
            items[k] = v
    return ESearchData(tag, uid, items)


def _search(raw: bytes, vals: list[RawValue]) -> SearchData:
    modseq = None
    if vals and isinstance(vals[-1], list):
        last = vals.pop()
        if not isinstance(last, list) or len(last) != 2 or _str(last[0]).upper() != "MODSEQ":
            raise _err("bad SEARCH modifier", raw)
        modseq = _int(last[1], "MODSEQ", raw)
    return SearchData(tuple(_int(v, "SEARCH", raw, limit=2**32 - 1) for v in vals), modseq)


def _namespace(v: RawValue) -> tuple[NamespaceDesc, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list):
        raise TypeError("namespace")
    out = []
    for d in v:
        if not isinstance(d, list) or len(d) < 2 or len(d) % 2:
            raise TypeError("namespace descr")
        ext = []
        for j in range(2, len(d), 2):
            ext.append((_str(d[j]), _atoms(d[j + 1])))
        out.append(NamespaceDesc(mailbox_from_wire(d[0]), _nstr(d[1]), tuple(ext)))
    return tuple(out)


def _untagged_data(kw: str, raw: bytes, pos: int) -> Response:
    end = _line_end(raw)
    if kw in ("CAPABILITY", "ENABLED"):
        caps = tuple(raw[pos:end].decode("ascii", "replace").split())
        return CapabilityData(caps) if kw == "CAPABILITY" else EnabledData(caps)
    vals = tokenize(raw, pos, end)
    if kw in ("LIST", "LSUB"):
        return _list(raw, vals, kw == "LSUB")
    if kw == "STATUS":
        return _status_data(raw, vals)
    if kw == "FLAGS":
        if len(vals) != 1:
            raise _err("FLAGS needs one list", raw)
        return FlagsData(_atoms(vals[0]))
    if kw == "SEARCH":
        return _search(raw, vals)
    if kw == "ESEARCH":
        return _esearch(raw, vals)
    if kw == "VANISHED":
        earlier = False
        if vals and isinstance(vals[0], list):
            if [_str(x).upper() for x in vals[0]] != ["EARLIER"]:
                raise _err("VANISHED accepts only (EARLIER)", raw)
            earlier = True
            vals = vals[1:]
        if len(vals) != 1 or not isinstance(vals[0], str):
            raise _err("VANISHED needs a UID set", raw)
        return VanishedData(SequenceSet.parse(vals[0]), earlier)
    if kw == "ID":
        if vals == [None]:
            return IdData(None)
        if len(vals) != 1 or not isinstance(vals[0], list) or len(vals[0]) % 2:
            raise _err("ID needs NIL or a list of pairs", raw)
        lst = vals[0]
        return IdData(tuple((_str(lst[i]), _nstr(lst[i + 1])) for i in range(0, len(lst), 2)))
    if kw == "NAMESPACE":
        if len(vals) != 3:
            raise _err("NAMESPACE needs three namespace lists", raw)
        return NamespaceData(_namespace(vals[0]), _namespace(vals[1]), _namespace(vals[2]))
    return UnknownResponse(raw)


_PLAIN_NAME = re.compile(rb"[\x20-\x25\x27-\x7e]*\Z")  # printable ASCII without "&": no mUTF-7
_ATTR_CACHE: dict[bytes, tuple[str, ...]] = {}
_ATTR_CACHE_MAX = 256  # LIST attribute sets repeat: a handful of distinct ones per account
_DELIMS = {b"NIL": None, b'"/"': "/", b'"."': "."}


# The FETCH fast path: `* n FETCH (...)` typed item by item with one regex each, for the items a
# sync asks for, in the forms servers send them (upper case, NIL and quoted strings, literals for
# sections; an ENVELOPE with literals, Dovecot's form of 8-bit text, is read part by part).
# Anything else (odd casing, atoms or extra spaces in an ENVELOPE, unknown items, errors) makes
# `_fast_fetch` answer None and the line goes through the tokenizer and `_fetch`, which decides.
_FF_HEAD = re.compile(rb"\* ([0-9]{1,10}) FETCH \(")
_FLAG = rb"[!#-'*-Z\\\]^-z|}~]+"  # an atom with no "[": the tokenizer's atom, split at spaces
_NSTR = rb"(NIL|" + _QSTR + rb")"
_ADDR = rb"\(" + rb" ".join([_NSTR] * 4) + rb"\)"
_ADDR_NC = _ADDR.replace(b"(NIL|", b"(?:NIL|")
_ALIST = rb"(NIL|\(" + _ADDR_NC + rb"(?: ?" + _ADDR_NC + rb")*\))"
_FF_UID = re.compile(rb"UID ([0-9]{1,10})")
_FF_FLAGS = re.compile(rb"FLAGS \(((?:" + _FLAG + rb"(?: " + _FLAG + rb")*)?)\)")
_FF_MODSEQ = re.compile(rb"MODSEQ \(([0-9]{1,18})\)")
_FF_SIZE = re.compile(rb"RFC822\.SIZE ([0-9]{1,18})")
_FF_DATE = re.compile(rb'INTERNALDATE "([^"\\\r\n]*)"')
_FF_ENVELOPE = re.compile(
    rb"ENVELOPE \(" + rb" ".join([_NSTR, _NSTR] + [_ALIST] * 6 + [_NSTR, _NSTR]) + rb"\)"
)
_FF_ADDR = re.compile(_ADDR)
_FF_SECTION = re.compile(
    rb"(BODY\[[^\]\r\n]*\](?:<[0-9]{1,10}>)?) (?:(NIL)|(" + _QSTR + rb")|\{([0-9]{1,20})\}\r\n)"
)
_MAX_UID = 2**32 - 1
_FF_NUMBERS = {  # first byte of the item -> (regex, key, largest value)
    0x55: (_FF_UID, "UID", _MAX_UID),
    0x4D: (_FF_MODSEQ, "MODSEQ", _MAX_MODSEQ),
    0x52: (_FF_SIZE, "RFC822.SIZE", _MAX_MODSEQ),
}


def _nq(v: bytes) -> str | None:
    """A fast-path nstring: NIL, or a quoted string with its quotes."""
    if v == b"NIL":
        return None
    return (unquote(v[1:-1]) if b"\\" in v else v[1:-1]).decode("utf-8", "surrogateescape")  # dec()


_WIRE_KEY_MAX = 512  # bytes: a line may be 64 KiB, the caches below stay small
_T = TypeVar("_T")


def _kept(cache: dict[bytes, _T], key: bytes, value: _T, max_items: int) -> _T:
    """`value`, remembered under the wire bytes it was made of when they are few: the fast path's
    caches stay bounded whatever a server sends (emptied when full)."""
    if len(key) <= _WIRE_KEY_MAX:
        if len(cache) >= max_items:
            cache.clear()
        cache[key] = value
    return value


_ALIST_CACHE: dict[bytes, tuple[Address, ...]] = {}
_ALIST_CACHE_MAX = 1024  # the same correspondents' addresses, four times in each ENVELOPE
_FLAG_LISTS: dict[bytes, tuple[str, ...]] = {}  # a FLAGS list's bytes -> its flags: a few per account
_SECTIONS: dict[bytes, str] = {}  # "BODY[TEXT]<0>" as read -> its FetchData key: a few per FETCH
_SMALL_CACHE_MAX = 256


def _alist(v: bytes) -> tuple[Address, ...] | None:
    """An ENVELOPE address list; a repeated one (same wire bytes) is the same immutable tuple."""
    if v == b"NIL":
        return None
    out = _ALIST_CACHE.get(v)
    if out is not None:
        return out
    made = tuple(Address(_nq(a), _nq(b), _nq(c), _nq(d)) for a, b, c, d in _FF_ADDR.findall(v))
    return _kept(_ALIST_CACHE, v, made, _ALIST_CACHE_MAX)


def _flag_list(v: bytes) -> tuple[str, ...]:
    out = _FLAG_LISTS.get(v)
    if out is not None:
        return out
    return _kept(_FLAG_LISTS, v, tuple(v.decode("ascii").split()), _SMALL_CACHE_MAX)


def _section_key(v: bytes) -> str:
    out = _SECTIONS.get(v)
    return out if out is not None else _kept(_SECTIONS, v, v.decode("ascii").upper(), _SMALL_CACHE_MAX)


_FF_NSTR_AT = re.compile(rb"NIL|(" + _QSTR + rb")|\{([0-9]{1,20})\}\r\n")


def _nstr_at(raw: bytes, pos: int, end: int) -> tuple[str | None, int]:
    """The nstring at `pos` (NIL, quoted or a literal) and where it ends; ValueError if none."""
    m = _FF_NSTR_AT.match(raw, pos)
    if m is None:
        raise ValueError("not an nstring")
    quoted, size = m.groups()
    if size is not None:
        stop = m.end() + int(size)
        if stop > end:
            raise ValueError("literal past the end of the line")
        return dec(raw[m.end() : stop]), stop
    return (None if quoted is None else dec(unquote(quoted[1:-1]))), m.end()


def _sep(raw: bytes, pos: int, byte: int) -> int:
    if raw[pos] != byte:
        raise ValueError("unexpected byte")
    return pos + 1


def _envelope_walk(raw: bytes, pos: int, end: int) -> tuple[Envelope, int]:
    """An ENVELOPE at `pos` ("(" of it) read part by part, literals included; ValueError (the
    general path decides) on anything else than single spaces between NIL, quoted, literal."""
    pos = _sep(raw, pos, 0x28)
    parts: list[str | tuple[Address, ...] | None] = []
    for i in range(10):
        if i:
            pos = _sep(raw, pos, 0x20)
        if 2 <= i < 8 and raw[pos] == 0x28:  # an address list
            pos += 1
            addrs: list[Address] = []
            while raw[pos] != 0x29:
                if addrs and raw[pos] == 0x20:
                    pos += 1
                pos = _sep(raw, pos, 0x28)
                name, pos = _nstr_at(raw, pos, end)
                adl, pos = _nstr_at(raw, _sep(raw, pos, 0x20), end)
                mailbox, pos = _nstr_at(raw, _sep(raw, pos, 0x20), end)
                host, pos = _nstr_at(raw, _sep(raw, pos, 0x20), end)
                pos = _sep(raw, pos, 0x29)
                addrs.append(Address(name, adl, mailbox, host))
            parts.append(tuple(addrs))
            pos += 1
        else:
            value, pos = _nstr_at(raw, pos, end)
            if value is not None and 2 <= i < 8:
                raise ValueError("an address list is NIL or a list")
            parts.append(value)
    pos = _sep(raw, pos, 0x29)
    return Envelope(*parts), pos  # type: ignore[arg-type]


def _fast_fetch(raw: bytes) -> FetchData | None:
    """A FETCH line typed without tokenizing, or None: then `_fetch` types it (or says what is wrong).

    Exactly `_fetch`'s answer whenever it answers (tests/imap hold it to that): that is why any
    error here, such as an invalid date-time, is left to the general path to report."""
    m = _FF_HEAD.match(raw)
    if m is None:
        return None
    try:
        return _fast_fetch_items(raw, int(m.group(1)), m.end())
    except (ImapProtocolError, ValueError, IndexError):
        return None


def _fast_fetch_items(raw: bytes, seq: int, pos: int) -> FetchData | None:
    end = _line_end(raw)
    items: dict[str, FetchValue] = {}
    while True:
        c = raw[pos]
        number = _FF_NUMBERS.get(c)
        if number is not None:  # UID n, MODSEQ (n), RFC822.SIZE n
            rx, key, limit = number
            m = rx.match(raw, pos)
            if m is None or int(m.group(1)) > limit:
                return None
            items[key] = int(m.group(1))
            pos = m.end()
        elif c == 0x46:  # F
            m = _FF_FLAGS.match(raw, pos)
            if m is None or b"NIL" in m.group(1).upper():  # NIL is a flag only via _atoms' text_of
                return None
            items["FLAGS"] = _flag_list(m.group(1))
            pos = m.end()
        elif c == 0x49:  # I
            m = _FF_DATE.match(raw, pos)
            if m is None:
                return None
            items["INTERNALDATE"] = parse_datetime(m.group(1).decode("ascii", "replace"))
            pos = m.end()
        elif c == 0x45:  # E
            m = _FF_ENVELOPE.match(raw, pos)
            if m is None:  # a literal in it (Dovecot's way with 8-bit text), or not one we take
                if not raw.startswith(b"ENVELOPE (", pos):
                    return None
                items["ENVELOPE"], pos = _envelope_walk(raw, pos + 9, end)
                c = raw[pos]
                if c == 0x20:
                    pos += 1
                    continue
                return FetchData(seq, items) if c == 0x29 and pos + 1 == end else None
            g = m.groups()
            items["ENVELOPE"] = Envelope(
                _nq(g[0]),
                _nq(g[1]),
                _alist(g[2]),
                _alist(g[3]),
                _alist(g[4]),
                _alist(g[5]),
                _alist(g[6]),
                _alist(g[7]),
                _nq(g[8]),
                _nq(g[9]),
            )
            pos = m.end()
        elif c == 0x42:  # B
            m = _FF_SECTION.match(raw, pos)
            if m is None:
                return None
            section, nil, quoted, size = m.groups()
            if size is not None:
                stop = m.end() + int(size)
                if stop > end:
                    return None
                items[_section_key(section)] = raw[m.end() : stop]
                pos = stop
            else:
                items[_section_key(section)] = None if nil else unquote(quoted[1:-1])
                pos = m.end()
        else:
            return None
        c = raw[pos]
        if c == 0x20:
            pos += 1
        elif c == 0x29 and pos + 1 == end:
            return FetchData(seq, items)
        else:
            return None


def _fast_name(name: bytes) -> str:
    if name[:1] == b'"':
        name = unquote(name[1:-1])
    return name.decode("ascii") if _PLAIN_NAME.match(name) else mailbox_from_wire(name)


def _fast(raw: bytes) -> Response | None:
    """Type the common LIST / STATUS lines with one regex each (LIST-STATUS hot path)."""
    head = raw[:9]
    if head == b"* STATUS ":
        m = _FAST_STATUS.match(raw)
        if m is None:
            return None
        name, group = m.groups()
        if name.upper() == b"NIL":
            return None
        if group is None:
            return StatusData(_fast_name(name), {})
        it = iter(group.decode("ascii").upper().split())
        return StatusData(_fast_name(name), dict(zip(it, map(int, it), strict=False)))  # pairs: regex
    if head[:7] in (b"* LIST ", b"* LSUB "):
        m = _FAST_LIST.match(raw)
        if m is None:
            return None
        kind, attrs, delim, name = m.groups()
        if name.upper() == b"NIL":
            return None
        attributes = _ATTR_CACHE.get(attrs)
        if attributes is None:
            attributes = tuple(attrs.decode("ascii").split())
            if len(_ATTR_CACHE) < _ATTR_CACHE_MAX:
                _ATTR_CACHE[attrs] = attributes
        d = _DELIMS[delim] if delim in _DELIMS else unquote(delim[1:-1]).decode("ascii")
        return ListData(attributes, d, _fast_name(name), None, None, (), kind == b"LSUB")
    if 0x30 <= head[2] <= 0x39 if len(head) > 2 else False:
        return _fast_fetch(raw)
    return None


def parse_response(raw: bytes) -> Response:
    """Type one complete logical response line (CRLF and inline literals included)."""
    try:
        return _fast(raw) or _parse(raw)
    except ImapProtocolError as e:
        if not e.line:
            e.line = raw[:1024]
        if e.position is None:
            e.position = _args_start(raw)
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as e:
        raise _err(f"malformed response ({e})", raw, _args_start(raw)) from None


def _args_start(raw: bytes) -> int:
    """Where a response's arguments start: the best position for a semantic error."""
    m = _UNTAGGED.match(raw) or _TAGGED.match(raw)
    return m.end() + 1 if m else 0


def _parse(raw: bytes) -> Response:
    if raw[:1] == b"+":
        end = _line_end(raw)
        return ContinuationRequest(dec(raw[2 if raw[1:2] == b" " else 1 : end]))
    if raw.startswith(b"* "):
        m = _UNTAGGED.match(raw)
        if m is None:  # not a keyword we could know: keep it raw, never fail on it
            return UnknownResponse(raw)
        kw = m.group(2).decode("ascii").upper()
        num = m.group(1)
        pos = m.end()
        if num is not None:
            n = int(num)
            if kw == "EXISTS":
                return ExistsData(n)
            if kw == "RECENT":
                return RecentData(n)
            if kw == "EXPUNGE":
                return ExpungeData(n)
            if kw == "FETCH":
                return _fetch(raw, n, tokenize(raw, pos, _line_end(raw)))
            return UnknownResponse(raw)
        if kw in _STATUS_WORDS:
            return _status(None, kw, raw, pos)
        return _untagged_data(kw, raw, pos)
    m = _TAGGED.match(raw)
    if m is None:
        raise _err("expected '*', '+' or a tag", raw, 0)
    word = m.group(2).decode("ascii").upper()
    if word not in ("OK", "NO", "BAD"):
        raise _err("a tagged response must be OK, NO or BAD", raw, m.start(2))
    return _status(m.group(1).decode("ascii"), word, raw, m.end())


class ResponseParser:
    """Feed server bytes in any chunking; take typed responses out."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._framer = Framer(max_line_bytes, max_literal_bytes, max_message_bytes)
        self._framer.plus_lines_raw = True

    def feed(self, data: bytes) -> None:
        self._framer.feed(data)

    def next_event(self) -> Response | NeedData:
        """The next response, or NEED_DATA. A malformed response raises ImapProtocolError
        after it has been consumed, so calling again continues with the following line."""
        raw = self._framer.next_frame(sync_literals_stop=False)
        if raw is None:
            return NEED_DATA
        return parse_response(raw)

    def events(self) -> Iterator[Response]:
        """Every complete response buffered so far (an error propagates; call again after it)."""
        next_frame = self._framer.next_frame
        while (raw := next_frame(sync_literals_stop=False)) is not None:
            yield parse_response(raw)

    def take_buffered(self) -> bytes:
        """Remove and return the bytes not parsed yet (they follow a COMPRESS/STARTTLS switch)."""
        return self._framer.take_buffered()
