"""Writers: each client command's words after the tag (client side), one function per shape.

`command_specs` pairs each with its command; `command_writer` adds the tag and CRLF and splits
at synchronizing literals.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from datetime import date
from typing import Any

from ._lexer import Out, enc
from .commands import *  # noqa: F403  (h11 style: the value classes, by their own __all__)
from .datetimes import format_date, format_datetime
from .mutf7 import encode_mailbox
from .seqset import SequenceSet

Writer = Callable[[Out, Any], None]

_MACROS = frozenset({"ALL", "FAST", "FULL"})


def _mailbox(out: Out, name: str) -> None:
    out.astring(encode_mailbox(name).encode("ascii"))


def fetch_att_bytes(att: FetchAtt) -> bytes:
    """One fetch attribute as written in FETCH (and NOTIFY MessageNew)."""
    if isinstance(att, str):
        return att.encode("ascii")
    head = b"BODY.PEEK[" if att.peek else b"BODY["
    tail = b"]" if att.partial is None else b"]<%d.%d>" % att.partial
    return head + enc(att.section) + tail


def _atts(out: Out, atts: tuple[FetchAtt, ...]) -> None:
    out.w(b"(" + b" ".join(fetch_att_bytes(a) for a in atts) + b")")


class _Quoted(str):
    """A search argument that must be written as a string, never as an atom."""


def _search_keys(out: Out, keys: tuple[SearchKey, ...]) -> None:
    """Written with an explicit stack: a NOT NOT NOT ... chain cannot exhaust recursion."""
    todo: list[Any] = []
    for i, k in enumerate(reversed(keys)):
        todo.append(k)
        if i != len(keys) - 1:
            todo.append(b" ")
    while todo:
        x = todo.pop()
        if isinstance(x, bytes):
            out.w(x)
        elif isinstance(x, SearchKey):
            if x.op == "AND":
                todo.append(b")")
                for i, sub in enumerate(reversed(x.args)):
                    todo.append(sub)
                    if i != len(x.args) - 1:
                        todo.append(b" ")
                todo.append(b"(")
            elif x.op == "SEQSET":
                todo.append(x.args[0])
            elif x.op == "MODSEQ" and len(x.args) == 3 and isinstance(x.args[0], str):
                # the entry name must be a quoted string: that is how a parser tells the forms apart
                todo += [x.args[2], b" ", x.args[1], b" ", _Quoted(x.args[0]), b"MODSEQ "]
            else:
                for a in reversed(x.args):
                    todo.append(a)
                    todo.append(b" ")
                todo.append(x.op.encode("ascii"))
        elif isinstance(x, SequenceSet):
            out.w(x.to_bytes())
        elif isinstance(x, bool):
            raise TypeError("bool is not a search argument")
        elif isinstance(x, int):
            out.w(b"%d" % x)
        elif isinstance(x, date):
            out.w(format_date(x).encode("ascii"))
        elif isinstance(x, _Quoted):
            out.string(enc(x))
        else:
            out.astring(enc(x))


def write_simple(name: bytes) -> Writer:
    def w(out: Out, c: Any) -> None:
        out.w(name)

    return w


def write_mailbox(name: bytes) -> Writer:
    def w(out: Out, c: Any) -> None:
        out.w(name + b" ")
        _mailbox(out, c.mailbox)

    return w


def write_id(out: Out, c: IdCommand) -> None:
    out.w(b"ID ")
    out.id_params(c.params)


def write_login(out: Out, c: LoginCommand) -> None:
    out.w(b"LOGIN ")
    out.astring(enc(c.username))
    out.w(b" ")
    out.astring(enc(c.password))


def write_authenticate(out: Out, c: AuthenticateCommand) -> None:
    out.w(b"AUTHENTICATE " + c.mechanism.encode("ascii"))
    if c.initial_response is not None:
        ir = binascii.b2a_base64(c.initial_response, newline=False) if c.initial_response else b"="
        out.w(b" " + ir)


def write_enable(out: Out, c: EnableCommand) -> None:
    out.w(b" ".join([b"ENABLE", *(x.encode("ascii") for x in c.capabilities)]))


def write_select(out: Out, c: SelectCommand) -> None:
    out.w(b"EXAMINE " if c.readonly else b"SELECT ")
    _mailbox(out, c.mailbox)
    params = []
    if c.condstore:
        params.append(b"CONDSTORE")
    if c.qresync is not None:
        q = c.qresync
        p = b"QRESYNC (%d %d" % (q.uidvalidity, q.modseq)
        if q.known_uids is not None:
            p += b" " + q.known_uids.to_bytes()
            if q.seq_match is not None:
                p += b" (" + q.seq_match[0].to_bytes() + b" " + q.seq_match[1].to_bytes() + b")"
        params.append(p + b")")
    if params:
        out.w(b" (" + b" ".join(params) + b")")


def write_rename(out: Out, c: RenameCommand) -> None:
    out.w(b"RENAME ")
    _mailbox(out, c.old)
    out.w(b" ")
    _mailbox(out, c.new)


def write_list(out: Out, c: ListCommand) -> None:
    out.w(b"LIST ")
    sel = [s.encode("ascii") for s in c.selection]
    if c.changedsince is not None:
        sel.append(b"CHANGEDSINCE (%d)" % c.changedsince)
    if sel:
        out.w(b"(" + b" ".join(sel) + b") ")
    _mailbox(out, c.reference)
    out.w(b" ")
    if len(c.patterns) == 1:
        out.list_mailbox(encode_mailbox(c.patterns[0]).encode("ascii"))
    else:
        out.w(b"(")
        for i, p in enumerate(c.patterns):
            if i:
                out.w(b" ")
            out.list_mailbox(encode_mailbox(p).encode("ascii"))
        out.w(b")")
    ret = [r.encode("ascii") for r in c.return_opts]
    if c.return_status is not None:
        ret.append(b"STATUS (" + " ".join(c.return_status).encode("ascii") + b")")
    if ret:
        out.w(b" RETURN (" + b" ".join(ret) + b")")


def write_lsub(out: Out, c: LsubCommand) -> None:
    out.w(b"LSUB ")
    _mailbox(out, c.reference)
    out.w(b" ")
    out.list_mailbox(encode_mailbox(c.pattern).encode("ascii"))


def write_status(out: Out, c: StatusCommand) -> None:
    out.w(b"STATUS ")
    _mailbox(out, c.mailbox)
    out.w(b" (" + " ".join(c.items).encode("ascii") + b")")


def write_append(out: Out, c: AppendCommand) -> None:
    out.w(b"APPEND ")
    _mailbox(out, c.mailbox)
    if c.flags:
        out.w(b" (" + " ".join(c.flags).encode("ascii") + b")")
    if c.date_time is not None:
        out.w(b' "' + format_datetime(c.date_time).encode("ascii") + b'"')
    out.w(b" ")
    out.literal(c.message)


def write_expunge(out: Out, c: ExpungeCommand) -> None:
    out.w(b"EXPUNGE" if c.uids is None else b"UID EXPUNGE " + c.uids.to_bytes())


def write_search(out: Out, c: SearchCommand) -> None:
    out.w(b"UID SEARCH" if c.uid else b"SEARCH")
    if c.return_opts is not None:
        out.w(b" RETURN (" + " ".join(c.return_opts).encode("ascii") + b")")
    if c.charset is not None:
        out.w(b" CHARSET ")
        out.astring(enc(c.charset))
    out.w(b" ")
    _search_keys(out, c.criteria)


def write_fetch(out: Out, c: FetchCommand) -> None:
    out.w((b"UID FETCH " if c.uid else b"FETCH ") + c.seqset.to_bytes() + b" ")
    if len(c.items) == 1 and isinstance(c.items[0], str) and c.items[0] in _MACROS:
        out.w(c.items[0].encode("ascii"))
    else:
        _atts(out, c.items)
    mods = []
    if c.changedsince is not None:
        mods.append(b"CHANGEDSINCE %d" % c.changedsince)
    if c.vanished:
        mods.append(b"VANISHED")
    if mods:
        out.w(b" (" + b" ".join(mods) + b")")


def write_store(out: Out, c: StoreCommand) -> None:
    out.w((b"UID STORE " if c.uid else b"STORE ") + c.seqset.to_bytes() + b" ")
    if c.unchangedsince is not None:
        out.w(b"(UNCHANGEDSINCE %d) " % c.unchangedsince)
    out.w(c.mode.encode("ascii") + (b"FLAGS.SILENT (" if c.silent else b"FLAGS ("))
    out.w(" ".join(c.flags).encode("ascii") + b")")


def write_copy_move(name: bytes) -> Writer:
    def w(out: Out, c: Any) -> None:
        out.w((b"UID " if c.uid else b"") + name + b" " + c.seqset.to_bytes() + b" ")
        _mailbox(out, c.mailbox)

    return w


def write_notify(out: Out, c: NotifyCommand) -> None:
    if c.groups is None:
        out.w(b"NOTIFY NONE")
        return
    out.w(b"NOTIFY SET")
    if c.status:
        out.w(b" STATUS")
    for g in c.groups:
        out.w(b" (" + g.filter.encode("ascii"))
        if g.mailboxes:
            out.w(b" ")
            if len(g.mailboxes) > 1:
                out.w(b"(")
            for i, m in enumerate(g.mailboxes):
                if i:
                    out.w(b" ")
                _mailbox(out, m)
            if len(g.mailboxes) > 1:
                out.w(b")")
        if g.events is None:
            out.w(b" NONE)")
            continue
        out.w(b" (")
        for i, ev in enumerate(g.events):
            if i:
                out.w(b" ")
            out.w(ev.name.encode("ascii"))
            if ev.fetch_atts is not None:
                out.w(b" ")
                _atts(out, ev.fetch_atts)
        out.w(b"))")


def write_compress(out: Out, c: CompressCommand) -> None:
    out.w(b"COMPRESS " + c.mechanism.encode("ascii"))
