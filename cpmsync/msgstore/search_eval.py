"""SEARCH key evaluation (RFC 3501 6.4.4, RFC 7162 MODSEQ) over one selected mailbox.

Cheap criteria (flags, dates, sizes, UIDs, MODSEQ) are decided from the message metadata read
once; header/body/text criteria go to the store's SQL-plus-scan search, one call per leaf.
OR/NOT/AND are set operations, so any nesting costs one pass per leaf, never per message.
Synchronous: the session runs it in a worker thread next to the store calls it makes.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cpmsync.imap import SearchKey, SequenceSet
from cpmsync.msgstore.records import MessageRecord, SearchFilter, UidSet

__all__ = ["SearchContext", "evaluate_search", "uses_modseq", "view_slice_by_seq", "view_slice_by_uid"]

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}


@dataclass(slots=True)
class SearchContext:
    """What a search sees: the session's view (UIDs in sequence order) and the stored metadata."""

    uids: Sequence[int]  # ascending; index + 1 = sequence number
    records: dict[int, MessageRecord]
    recent: set[int]
    store_search: Callable[[SearchFilter], set[int]]  # runs one store search restricted to the view


def _day(d: datetime) -> date:
    return d.date()


def uses_modseq(keys: Sequence[SearchKey]) -> bool:
    """RFC 7162 3.1.5: "(MODSEQ n)" is added to the result only when the MODSEQ criterion is used."""
    stack = list(keys)
    while stack:
        k = stack.pop()
        if k.op == "MODSEQ":
            return True
        stack += [a for a in k.args if isinstance(a, SearchKey)]
    return False


def evaluate_search(keys: Sequence[SearchKey], ctx: SearchContext) -> list[int]:
    """UIDs (ascending) matching the AND of `keys`."""
    universe = set(ctx.uids)
    result = universe
    for k in keys:
        result = result & _eval(k, ctx, universe)
    return sorted(result)


def _spans(s: SequenceSet, largest: int) -> list[tuple[int, int]]:
    """(lo, hi) per range with '*' = `largest`, in ascending order (RFC 3501: n:m == m:n)."""
    out = []
    for a, b in s.ranges:
        a = largest if a == 0 else a
        b = largest if b == 0 else b
        out.append((min(a, b), max(a, b)))
    return out


def view_slice_by_seq(s: SequenceSet, view: Sequence[int]) -> list[int]:
    """UIDs at the sequence numbers in `s` (out-of-range numbers ignored), ascending, unique."""
    n = len(view)
    picked: set[int] = set()
    for lo, hi in _spans(s, n):
        lo, hi = max(lo, 1), min(hi, n)
        if lo <= hi:
            picked.update(view[lo - 1 : hi])
    return sorted(picked)


def view_slice_by_uid(s: SequenceSet, view: Sequence[int]) -> list[int]:
    """UIDs of `view` (ascending) inside the UID set `s`; bisect per range, not per UID."""
    if not view:
        return []
    picked: set[int] = set()
    for lo, hi in _spans(s, view[-1]):
        i = bisect.bisect_left(view, lo)
        j = bisect.bisect_right(view, hi)
        picked.update(view[i:j])
    return sorted(picked)


def _seqset_uids(s: SequenceSet, ctx: SearchContext) -> set[int]:
    return set(view_slice_by_seq(s, ctx.uids))


def _uidset_uids(s: SequenceSet, ctx: SearchContext) -> set[int]:
    return set(view_slice_by_uid(s, ctx.uids))


def _where(ctx: SearchContext, pred: Callable[[MessageRecord], bool]) -> set[int]:
    return {u for u, r in ctx.records.items() if pred(r)}


def _eval(k: SearchKey, ctx: SearchContext, universe: set[int]) -> set[int]:
    op, args = k.op, k.args
    if op == "ALL":
        return set(universe)
    if op in _FLAG_KEYS:
        flag, want = _FLAG_KEYS[op]
        return _where(ctx, lambda r: (flag in r.flags) == want)
    if op in ("KEYWORD", "UNKEYWORD"):
        kw = str(args[0]).lower()
        want = op == "KEYWORD"
        return _where(ctx, lambda r: any(f.lower() == kw for f in r.flags) == want)
    if op == "RECENT":
        return universe & ctx.recent
    if op == "OLD":
        return universe - ctx.recent
    if op == "NEW":
        return (universe & ctx.recent) & _where(ctx, lambda r: "\\Seen" not in r.flags)
    if op in ("BEFORE", "ON", "SINCE"):
        day = args[0]
        assert isinstance(day, date)
        d: date = day
        if op == "BEFORE":
            return _where(ctx, lambda r: _day(r.internaldate) < d)
        if op == "ON":
            return _where(ctx, lambda r: _day(r.internaldate) == d)
        return _where(ctx, lambda r: _day(r.internaldate) >= d)
    if op in ("LARGER", "SMALLER"):
        n = int(args[0])  # type: ignore[arg-type]
        if op == "LARGER":
            return _where(ctx, lambda r: r.size > n)
        return _where(ctx, lambda r: r.size < n)
    if op in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN
        cutoff = time.time() - int(args[0])  # type: ignore[arg-type]
        if op == "OLDER":
            return _where(ctx, lambda r: r.internaldate.astimezone(UTC).timestamp() <= cutoff)
        return _where(ctx, lambda r: r.internaldate.astimezone(UTC).timestamp() >= cutoff)
    if op == "UID":
        s = args[0]
        assert isinstance(s, SequenceSet)
        return _uidset_uids(s, ctx)
    if op == "SEQSET":
        s = args[0]
        assert isinstance(s, SequenceSet)
        return _seqset_uids(s, ctx)
    if op == "MODSEQ":
        n = int(args[-1])  # type: ignore[arg-type]
        return _where(ctx, lambda r: r.modseq >= n)
    if op == "NOT":
        sub = args[0]
        assert isinstance(sub, SearchKey)
        return universe - _eval(sub, ctx, universe)
    if op == "OR":
        a, b = args
        assert isinstance(a, SearchKey) and isinstance(b, SearchKey)
        return _eval(a, ctx, universe) | _eval(b, ctx, universe)
    if op == "AND":
        out = set(universe)
        for sub in args:
            assert isinstance(sub, SearchKey)
            out &= _eval(sub, ctx, universe)
        return out
    flt = SearchFilter(uids=UidSet.from_uids(universe))
    if op in _HEADER_KEYS:
        flt.headers.append((_HEADER_KEYS[op], str(args[0])))
    elif op == "HEADER":
        flt.headers.append((str(args[0]), str(args[1])))
    elif op == "BODY":
        flt.body.append(str(args[0]))
    elif op == "TEXT":
        flt.text.append(str(args[0]))
    elif op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        sent = args[0]
        assert isinstance(sent, date)
        setattr(flt, {"SENTBEFORE": "sent_before", "SENTON": "sent_on", "SENTSINCE": "sent_since"}[op], sent)
    else:
        raise ValueError(f"unsupported search key {op}")
    if not universe:
        return set()
    return ctx.store_search(flt)
