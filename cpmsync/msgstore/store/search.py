"""SEARCH: SQL for flags, UIDs, MODSEQ, dates and sizes; byte scans for the survivors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    false,
    select,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.records import (
    SearchFilter,
    SearchResult,
)
from cpmsync.msgstore.store.engine import StoreEngine
from cpmsync.msgstore.store.statements import (
    _day_conds,
    _text_match,
    _uid_filter,
)


class SearchOps(StoreEngine):
    """SEARCH: SQL for flags, UIDs, MODSEQ, dates and sizes; byte scans for the survivors."""

    # -- search

    def search(self, user: str, mailbox: str | int, flt: SearchFilter) -> SearchResult:
        """AND of the filter's criteria: SQL for flags/UIDs/MODSEQ/dates/sizes, then substring scans
        of the stored bytes (case-insensitive, no MIME decoding of bodies) for the survivors only."""
        m = t.message
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            clause, recheck = _uid_filter(m.c.uid, flt.uids)
            conds: list[ColumnElement[bool]] = [m.c.mailbox_id == mb.id, clause]
            for f in flt.flags_set:
                bit = t.FLAG_BITS.get(f.lower())
                if bit is not None:
                    conds.append(m.c.sysflags.op("&")(bit) != 0)
                elif not f.startswith("\\"):
                    conds.append(m.c.keywords.contains(f" {f} ", autoescape=True))
                else:
                    conds.append(false())
            for f in flt.flags_unset:
                bit = t.FLAG_BITS.get(f.lower())
                if bit is not None:
                    conds.append(m.c.sysflags.op("&")(bit) == 0)
                elif not f.startswith("\\"):
                    conds.append(~m.c.keywords.contains(f" {f} ", autoescape=True))
            if flt.modseq_min is not None:
                conds.append(m.c.modseq >= flt.modseq_min)
            conds += _day_conds(m.c.internal_day, flt.before, flt.on, flt.since)
            conds += _day_conds(m.c.sent_day, flt.sent_before, flt.sent_on, flt.sent_since)
            if flt.larger is not None:
                conds.append(m.c.size > flt.larger)
            if flt.smaller is not None:
                conds.append(m.c.size < flt.smaller)
            need_bytes = bool(flt.headers or flt.body or flt.text)
            cols: list[Any] = [m.c.uid, m.c.modseq]
            q = select(*cols).where(and_(*conds))
            if need_bytes:
                q = (
                    select(*cols, t.blob.c.data)
                    .select_from(m.join(t.blob, t.blob.c.id == m.c.blob_id))
                    .where(and_(*conds))
                )
            uids: list[int] = []
            highest = 0
            for r in conn.execute(q.order_by(m.c.uid)):
                if recheck is not None and r.uid not in recheck:
                    continue
                if need_bytes and not _text_match(bytes(r.data), flt):
                    continue
                uids.append(r.uid)
                highest = max(highest, r.modseq)
            return SearchResult(uids=uids, highest_modseq=highest)
