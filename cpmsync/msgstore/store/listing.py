"""LIST, LIST-EXTENDED, LIST-STATUS and LIST-CHANGEDSINCE (the CR, Appendix I)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    false,
    func,
    select,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.mailbox_pattern import PatternSet
from cpmsync.msgstore.records import (
    MailboxListing,
)
from cpmsync.msgstore.store.engine import StoreEngine
from cpmsync.msgstore.store.statements import (
    _INBOX,
    _SEEN,
    DELIMITER,
    _ancestors,
    _chunks,
    _names_in,
    _status_row,
    _with_status,
)


class ListingOps(StoreEngine):
    """LIST, LIST-EXTENDED, LIST-STATUS and LIST-CHANGEDSINCE (the CR, Appendix I)."""

    # -- listing

    def _subscribed_names(self, conn: Connection, user_id: int) -> set[str]:
        return {
            r[0]
            for r in conn.execute(select(t.subscription.c.name).where(t.subscription.c.user_id == user_id))
        }

    def subscribed_names(self, user: str) -> set[str]:
        """The names `user` is subscribed to (LOGIN reads them once: one precompiled SELECT, not
        the whole account's mailboxes that LSUB "*" walks); empty for an unknown user."""
        return {r[0] for r in self._raw_read(self._raw_subscribed_names, {"p_user": user})}

    @staticmethod
    def _sort_key(name: str) -> tuple[int, str]:
        return (0 if name == _INBOX or name.startswith(_INBOX + DELIMITER) else 1, name)

    def list_mailboxes(
        self,
        user: str,
        reference: str,
        patterns: Sequence[str],
        *,
        subscribed_only: bool = False,
        with_status: bool = False,
    ) -> list[MailboxListing]:
        """LIST / LSUB / LIST-EXTENDED candidates matching `reference` + `patterns` (RFC 3501, 5258)."""
        if all(p == "" for p in patterns):
            return []
        pats = PatternSet(reference, [p for p in patterns if p != ""], DELIMITER)
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            rows = conn.execute(self._listing_query(user_id, with_status)).all()
            subscribed = self._subscribed_names(conn, user_id)
            parents = {r.parent for r in rows}
            sub_parents = {a for s in subscribed for a in _ancestors(s)}
            by_name = {r.name: r for r in rows}
            out: list[MailboxListing] = []
            names = subscribed if subscribed_only else by_name.keys()
            everything = pats.matches_everything
            for name in names:
                if not everything and not pats.matches(name):
                    continue
                r = by_name.get(name)
                out.append(
                    MailboxListing(
                        name=name,
                        id=r.id if r else None,
                        mailboxid=r.mailboxid if r else None,
                        has_children=name in parents,
                        has_subscribed_children=name in sub_parents,
                        subscribed=name in subscribed,
                        nonexistent=r is None,
                        highestmodseq=0 if r is None or r.nomodseq else r.highestmodseq,
                        nomodseq=bool(r.nomodseq) if r else False,
                        status=_status_row(r) if with_status and r is not None else None,
                    )
                )
            out.sort(key=lambda m: self._sort_key(m.name))
            return out

    @staticmethod
    def _listing_query(user_id: int, with_status: bool) -> Any:
        """All of a user's mailboxes; with STATUS aggregates joined in, one pass (LIST-STATUS)."""
        mb, m = t.mailbox, t.message
        if not with_status:
            return select(
                mb.c.id, mb.c.name, mb.c.parent, mb.c.mailboxid, mb.c.highestmodseq, mb.c.nomodseq
            ).where(mb.c.user_id == user_id)
        agg = (
            select(
                m.c.mailbox_id.label("mid"),
                func.count().label("n"),
                func.sum(case((m.c.sysflags.op("&")(_SEEN) == 0, 1), else_=0)).label("unseen"),
                func.sum(m.c.size).label("size"),
                func.sum(case((m.c.uid >= mb.c.first_recent_uid, 1), else_=0)).label("recent"),
            )
            .select_from(m.join(mb, mb.c.id == m.c.mailbox_id))
            .where(mb.c.user_id == user_id)
            .group_by(m.c.mailbox_id)
            .subquery()
        )
        return (
            select(
                mb.c.id,
                mb.c.name,
                mb.c.parent,
                mb.c.mailboxid,
                mb.c.highestmodseq,
                mb.c.nomodseq,
                mb.c.uidnext,
                mb.c.uidvalidity,
                agg.c.n,
                agg.c.unseen,
                agg.c.size,
                agg.c.recent,
            )
            .select_from(mb.outerjoin(agg, agg.c.mid == mb.c.id))
            .where(mb.c.user_id == user_id)
        )

    def list_changed_since(
        self,
        user: str,
        modseq: int,
        reference: str = "",
        patterns: Sequence[str] = ("*",),
        *,
        subscribed_only: bool = False,
        include_gone: bool = True,
        qresync: bool = True,
        with_status: bool = False,
    ) -> list[MailboxListing]:
        """LIST (CHANGEDSINCE (modseq)): mailboxes with HIGHESTMODSEQ > modseq, never NOMODSEQ ones
        (CR Appendix I.4, I.5). Reads only changed mailboxes through (user_id, highestmodseq).

        `qresync` (I.3): expunges take a MODSEQ here, so a mailbox whose only change is an expunge is
        always listed: required with QRESYNC (1a), allowed without (2a). The result does not depend on it.
        `include_gone` (our extension): deleted mailboxes as \\NonExistent, renamed ones with OLDNAME.
        """
        del qresync  # documented above: both branches of I.3 give the same answer with our MODSEQs
        pats = PatternSet(reference, [p for p in patterns if p != ""], DELIMITER)
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            rows = conn.execute(
                select(
                    t.mailbox.c.id,
                    t.mailbox.c.name,
                    t.mailbox.c.mailboxid,
                    t.mailbox.c.highestmodseq,
                    t.mailbox.c.created_modseq,
                ).where(
                    t.mailbox.c.user_id == user_id,
                    t.mailbox.c.highestmodseq > modseq,
                    t.mailbox.c.nomodseq == false(),
                )
            ).all()
            rows = [r for r in rows if pats.matches(r.name)]
            names = [r.name for r in rows]
            subscribed = self._subscribed_among(conn, user_id, names)
            if subscribed_only:
                rows = [r for r in rows if r.name in subscribed]
                names = [r.name for r in rows]
            with_children = self._names_with_children(conn, user_id, names)
            # CHILDINFO ("SUBSCRIBED") only matters for SUBSCRIBED selections (RFC 5258 RECURSIVEMATCH).
            with_sub_children = (
                self._names_with_subscribed_children(conn, user_id, names) if subscribed_only else set()
            )
            old_names: dict[int, str] = {}
            if include_gone:
                for rn in conn.execute(
                    select(t.mailbox_rename.c.mailbox_id, t.mailbox_rename.c.old_name)
                    .where(t.mailbox_rename.c.user_id == user_id, t.mailbox_rename.c.modseq > modseq)
                    .order_by(t.mailbox_rename.c.modseq)
                ):
                    old_names.setdefault(rn.mailbox_id, rn.old_name)
            out = [
                MailboxListing(
                    name=r.name,
                    id=r.id,
                    mailboxid=r.mailboxid,
                    has_children=r.name in with_children,
                    has_subscribed_children=r.name in with_sub_children,
                    subscribed=r.name in subscribed,
                    old_name=old_names.get(r.id) if r.created_modseq <= modseq else None,
                    highestmodseq=r.highestmodseq,
                )
                for r in rows
            ]
            if include_gone:
                out.extend(self._gone_since(conn, user_id, modseq, pats, subscribed_only, old_names, out))
            out.sort(key=lambda m: self._sort_key(m.name))
            if with_status:
                out = self._attach_status(conn, user_id, out)
            return out

    def _gone_since(
        self,
        conn: Connection,
        user_id: int,
        modseq: int,
        pats: PatternSet,
        subscribed_only: bool,
        old_names: dict[int, str],
        listed: list[MailboxListing],
    ) -> list[MailboxListing]:
        """Mailboxes the client could know at `modseq` that were deleted since."""
        tombs = conn.execute(
            select(t.mailbox_tombstone).where(
                t.mailbox_tombstone.c.user_id == user_id,
                t.mailbox_tombstone.c.deleted_modseq > modseq,
                t.mailbox_tombstone.c.created_modseq <= modseq,
                t.mailbox_tombstone.c.nomodseq == false(),
            )
        ).all()
        if not tombs:
            return []
        existing = self._existing_names(conn, user_id, [tb.name for tb in tombs])
        existing |= {m.name for m in listed}
        subscribed = (
            self._subscribed_among(conn, user_id, [tb.name for tb in tombs]) if subscribed_only else set()
        )
        out: list[MailboxListing] = []
        seen: set[str] = set()
        for tb in sorted(tombs, key=lambda x: -x.deleted_modseq):
            old = old_names.get(tb.mailbox_id)
            if tb.name in existing or tb.name in seen:
                continue
            if not (pats.matches(tb.name) or (old is not None and pats.matches(old))):
                continue
            if subscribed_only and tb.name not in subscribed:
                continue
            seen.add(tb.name)
            out.append(
                MailboxListing(
                    name=tb.name,
                    id=None,
                    mailboxid=tb.mailboxid,
                    has_children=False,
                    has_subscribed_children=False,
                    subscribed=tb.name in subscribed,
                    nonexistent=True,
                    old_name=old if old != tb.name else None,
                    highestmodseq=tb.deleted_modseq,
                )
            )
        return out

    def _subscribed_among(self, conn: Connection, user_id: int, names: Sequence[str]) -> set[str]:
        return _names_in(conn, t.subscription, user_id, names)

    def _names_with_children(self, conn: Connection, user_id: int, names: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(names):
            found.update(
                r[0]
                for r in conn.execute(
                    select(t.mailbox.c.parent)
                    .where(t.mailbox.c.user_id == user_id, t.mailbox.c.parent.in_(chunk))
                    .distinct()
                )
            )
        return found

    def _names_with_subscribed_children(
        self, conn: Connection, user_id: int, names: Sequence[str]
    ) -> set[str]:
        """One indexed-by-user probe per name: cost follows the names asked about, not all subscriptions."""
        sub = t.subscription
        found: set[str] = set()
        for n in names:
            prefix = n + DELIMITER
            hit = conn.execute(
                select(sub.c.id)
                .where(sub.c.user_id == user_id, func.substr(sub.c.name, 1, len(prefix)) == prefix)
                .limit(1)
            ).first()
            if hit is not None:
                found.add(n)
        return found

    def _attach_status(
        self, conn: Connection, user_id: int, items: list[MailboxListing]
    ) -> list[MailboxListing]:
        ids = [m.id for m in items if m.id is not None]
        stats = self._status_many(conn, user_id, ids)
        return [_with_status(m, stats.get(m.id)) if m.id is not None else m for m in items]
