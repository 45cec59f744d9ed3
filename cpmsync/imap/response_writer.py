"""Server side: every typed response to its exact wire bytes.

Mailbox names are always quoted (as Dovecot does and the CR's examples show), or sent as a
literal when quoting cannot carry them; message data (BODY[...], RFC822*) is always a literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from ._lexer import _ATOM_RE, MAX_QUOTED_BYTES, Out, enc
from .datetimes import format_datetime
from .mutf7 import encode_mailbox
from .responses import *  # noqa: F403  (h11 style: the value classes, by their own __all__)
from .seqset import SequenceSet

__all__ = ["MailboxStyle", "serialize_response"]

_CRLF_RE = re.compile(r"[\r\n]+")


def _text(s: str) -> bytes:
    """Human text: CR/LF would end the line early (response injection), so they become spaces."""
    return enc(_CRLF_RE.sub(" ", s)) if ("\r" in s or "\n" in s) else enc(s)


def _code(c: ResponseCode) -> bytes:
    v = c.value
    name = c.name.encode("ascii")
    if v is None:
        return b"[" + name + b"]"
    if isinstance(v, bool):
        arg = b""
    elif isinstance(v, int):
        arg = b"%d" % v
    elif isinstance(v, tuple):
        joined = " ".join(v).encode("ascii")
        arg = b"(" + joined + b")" if c.name == "PERMANENTFLAGS" else joined
    elif isinstance(v, SequenceSet):
        arg = v.to_bytes()
    elif isinstance(v, AppendUid):
        arg = b"%d %s" % (v.uidvalidity, v.uids.to_bytes())
    elif isinstance(v, CopyUid):
        arg = b"%d %s %s" % (v.uidvalidity, v.source.to_bytes(), v.dest.to_bytes())
    elif c.name == "MAILBOXID":
        arg = b"(" + _text(v) + b")"
    else:
        arg = _text(v).replace(b"]", b" ")
    return b"[" + name + b" " + arg + b"]"


def _status_response(r: StatusResponse) -> bytes:
    parts = [b"*" if r.tag is None else r.tag.encode("ascii"), b" ", r.status.encode("ascii")]
    if r.code is not None:
        parts += (b" ", _code(r.code))
    if r.text:
        parts += (b" ", _text(r.text))
    parts.append(b"\r\n")
    return b"".join(parts)


def _mailbox(out: Out, name: str) -> None:
    out.string(encode_mailbox(name).encode("ascii"))


def _delim(d: str | None) -> bytes:
    if d is None:
        return b"NIL"
    b = enc(d)
    return b'"\\' + b + b'"' if b in (b'"', b"\\") else b'"' + b + b'"'


def _atom_name(name: bytes) -> bool:
    return len(name) <= MAX_QUOTED_BYTES and bool(_ATOM_RE.match(name)) and name.upper() != b"NIL"


def _list(r: ListData, atoms: bool = False) -> bytes:
    head = b"* LSUB (" if r.lsub else b"* LIST ("
    name = encode_mailbox(r.name).encode("ascii")
    if atoms and r.childinfo is None and r.oldname is None and not r.extra and _atom_name(name):
        attrs = " ".join(r.attributes).encode("ascii")
        return b"".join((head, attrs, b") ", _delim(r.delimiter), b" ", name, b"\r\n"))
    simple = (
        r.childinfo is None
        and r.oldname is None
        and not r.extra
        and len(name) <= 1000
        and b'"' not in name
        and b"\\" not in name
    )
    if simple:  # the hot path: one join, no writer object
        return b"".join(
            (head, " ".join(r.attributes).encode("ascii"), b") ", _delim(r.delimiter), b' "', name, b'"\r\n')
        )
    out = Out()
    out.w(head + " ".join(r.attributes).encode("ascii") + b") " + _delim(r.delimiter) + b" ")
    if atoms and _atom_name(name):
        out.w(name)
    else:
        out.string(name)
    ext: list[tuple[str, Any]] = []
    if r.childinfo is not None:
        ext.append(("CHILDINFO", r.childinfo))
    if r.oldname is not None:
        ext.append(("OLDNAME", r.oldname))
    if ext or r.extra:
        out.w(b" (")
        first = True
        for k, v in ext:
            # quoted tag, as RFC 5258 9 and RFC 5465 5.4 write it: ("OLDNAME" ("old"))
            out.w((b"" if first else b" ") + b'"' + k.encode("ascii") + b'" (')
            first = False
            if k == "CHILDINFO":
                for i, x in enumerate(v):
                    if i:
                        out.w(b" ")
                    out.string(enc(x))
            else:
                _mailbox(out, v)
            out.w(b")")
        for k, raw in r.extra:
            out.w((b"" if first else b" ") + k.encode("ascii") + b" ")
            first = False
            out.raw_value(raw)
        out.w(b")")
    out.w(b"\r\n")
    return out.finish()[0]


def _status_data(r: StatusData, atoms: bool = False) -> bytes:
    name = encode_mailbox(r.mailbox).encode("ascii")
    items = []
    for k, v in r.items.items():
        if isinstance(v, int):
            items.append(b"%s %d" % (k.encode("ascii"), v))
        else:
            items.append(k.encode("ascii") + b" (" + _text(v) + b")")
    tail = b" (" + b" ".join(items) + b")\r\n"
    if atoms and _atom_name(name):
        return b"* STATUS " + name + tail
    if len(name) <= 1000 and b'"' not in name and b"\\" not in name:
        return b'* STATUS "' + name + b'"' + tail
    out = Out()
    out.w(b"* STATUS ")
    out.string(name)
    out.w(tail)
    return out.finish()[0]


def _addresses(out: Out, addrs: tuple[Address, ...] | None) -> None:
    if addrs is None:
        out.w(b"NIL")
        return
    out.w(b"(")
    for a in addrs:
        out.w(b"(")
        for i, f in enumerate((a.name, a.adl, a.mailbox, a.host)):
            if i:
                out.w(b" ")
            out.nstring(None if f is None else enc(f))
        out.w(b")")
    out.w(b")")


def _envelope(out: Out, e: Envelope) -> None:
    def ns(s: str | None) -> None:
        out.nstring(None if s is None else enc(s))

    out.w(b"(")
    ns(e.date)
    out.w(b" ")
    ns(e.subject)
    for addrs in (e.from_, e.sender, e.reply_to, e.to, e.cc, e.bcc):
        out.w(b" ")
        _addresses(out, addrs)
    out.w(b" ")
    ns(e.in_reply_to)
    out.w(b" ")
    ns(e.message_id)
    out.w(b")")


def _fetch(r: FetchData) -> bytes:
    out = Out()
    out.w(b"* %d FETCH (" % r.seq)
    first = True
    for k, v in r.items.items():
        if not first:
            out.w(b" ")
        first = False
        out.w(k.encode("ascii") + b" ")
        if k == "MODSEQ" and isinstance(v, int):
            out.w(b"(%d)" % v)
        elif isinstance(v, bool):
            out.raw_value(str(v))
        elif isinstance(v, int):
            out.w(b"%d" % v)
        elif k == "FLAGS" and isinstance(v, tuple):
            out.w(b"(" + " ".join(v).encode("ascii") + b")")
        elif isinstance(v, datetime):
            out.w(b'"' + format_datetime(v).encode("ascii") + b'"')
        elif isinstance(v, Envelope):
            _envelope(out, v)
        elif isinstance(v, bytes) and k.startswith(("BODY[", "RFC822", "BINARY[")):
            out.literal(v)
        elif isinstance(v, tuple):
            out.raw_value(list(v))
        else:
            out.raw_value(v)
    out.w(b")\r\n")
    return out.finish()[0]


def _search(r: SearchData) -> bytes:
    parts = [b"* SEARCH"]
    parts += [b"%d" % n for n in r.ids]
    if r.modseq is not None:
        parts.append(b"(MODSEQ %d)" % r.modseq)
    return b" ".join(parts) + b"\r\n"


def _esearch(r: ESearchData) -> bytes:
    out = Out()
    out.w(b"* ESEARCH")
    if r.tag is not None:
        out.w(b" (TAG ")
        out.string(enc(r.tag))
        out.w(b")")
    if r.uid:
        out.w(b" UID")
    for k, v in r.items.items():
        out.w(b" " + k.encode("ascii") + b" ")
        if isinstance(v, bool):
            out.raw_value(str(v))
        elif isinstance(v, int):
            out.w(b"%d" % v)
        elif isinstance(v, SequenceSet):
            out.w(v.to_bytes())
        else:
            out.raw_value(v)
    out.w(b"\r\n")
    return out.finish()[0]


def _id(r: IdData) -> bytes:
    out = Out()
    out.w(b"* ID ")
    out.id_params(r.params)
    out.w(b"\r\n")
    return out.finish()[0]


def _ns_list(out: Out, descs: tuple[NamespaceDesc, ...] | None) -> None:
    if descs is None:
        out.w(b"NIL")
        return
    out.w(b"(")
    for d in descs:
        out.w(b"(")
        _mailbox(out, d.prefix)
        out.w(b" " + _delim(d.delimiter))
        for k, vals in d.extensions:
            out.w(b" ")
            out.string(enc(k))
            out.w(b" (")
            for i, x in enumerate(vals):
                if i:
                    out.w(b" ")
                out.string(enc(x))
            out.w(b")")
        out.w(b")")
    out.w(b")")


def _namespace(r: NamespaceData) -> bytes:
    out = Out()
    out.w(b"* NAMESPACE ")
    _ns_list(out, r.personal)
    out.w(b" ")
    _ns_list(out, r.other)
    out.w(b" ")
    _ns_list(out, r.shared)
    out.w(b"\r\n")
    return out.finish()[0]


def _vanished(r: VanishedData) -> bytes:
    return (b"* VANISHED (EARLIER) " if r.earlier else b"* VANISHED ") + r.uids.to_bytes() + b"\r\n"


def _continuation(r: ContinuationRequest) -> bytes:
    return b"+ " + _text(r.text) + b"\r\n"


def _words(head: bytes, words: tuple[str, ...]) -> bytes:
    return b" ".join([head, *(w.encode("ascii") for w in words)]) + b"\r\n"


_WRITERS: dict[type, Callable[[Any], bytes]] = {
    StatusResponse: _status_response,
    ContinuationRequest: _continuation,
    CapabilityData: lambda r: (
        b" ".join([b"* CAPABILITY", *(c.encode("ascii") for c in r.capabilities)]) + b"\r\n"
    ),
    EnabledData: lambda r: b" ".join([b"* ENABLED", *(c.encode("ascii") for c in r.capabilities)]) + b"\r\n",
    IdData: _id,
    NamespaceData: _namespace,
    ListData: _list,
    StatusData: _status_data,
    FlagsData: lambda r: b"* FLAGS (" + " ".join(r.flags).encode("ascii") + b")\r\n",
    ExistsData: lambda r: b"* %d EXISTS\r\n" % r.count,
    RecentData: lambda r: b"* %d RECENT\r\n" % r.count,
    ExpungeData: lambda r: b"* %d EXPUNGE\r\n" % r.seq,
    VanishedData: _vanished,
    FetchData: _fetch,
    SearchData: _search,
    ESearchData: _esearch,
    UnknownResponse: lambda r: r.raw,
}


MailboxStyle = Literal["quoted", "atom"]


def serialize_response(resp: Response, *, mailbox_style: MailboxStyle = "quoted") -> bytes:
    """The exact wire bytes of one response, CRLF included.

    mailbox_style: how LIST/LSUB/STATUS write a mailbox name that could be an atom. "quoted"
    (default) matches the CR's examples ("Default"); "atom" matches Dovecot (Default, INBOX) and
    saves two bytes per name. Names that need quoting or a literal get it either way.
    """
    if mailbox_style == "atom":
        if type(resp) is ListData:
            return _list(resp, True)
        if type(resp) is StatusData:
            return _status_data(resp, True)
    return _WRITERS[type(resp)](resp)
