"""Cross-instance push: what another instance committed, replayed from MODSEQs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, select

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.hub import EventKind, StoreEvent
from cpmsync.msgstore.store.engine import StoreEngine
from cpmsync.msgstore.store.statements import (
    _chunks,
)


class ChangeOps(StoreEngine):
    """Cross-instance push: what another instance committed, replayed from MODSEQs."""

    # ================================================================ cross-instance push

    def user_modseqs(self, users: Sequence[str]) -> dict[str, int]:
        """Each existing user's highest MODSEQ (the PostgreSQL listener's catch-up baselines)."""
        out: dict[str, int] = {}
        with self._read() as conn:
            for chunk in _chunks(list(users)):
                for name, modseq in conn.execute(
                    select(t.user.c.name, t.user.c.modseq).where(t.user.c.name.in_(chunk))
                ):
                    out[name] = int(modseq)
        return out

    def changes_after(self, user: str, since: int) -> tuple[int, list[StoreEvent]]:
        """The user's committed changes with MODSEQ in (since, now] as events, in MODSEQ order, and
        now: what a listener replays after its connection was down. Rebuilt from the rows, so it is
        the net effect (a message appended then expunged shows as the expunge; a changed message is
        both APPEND and FLAGS, which sessions take as news only where it is news); subscriptions
        carry no MODSEQ and are not replayed."""
        with self._read() as conn:
            row = conn.execute(select(t.user.c.id, t.user.c.modseq).where(t.user.c.name == user)).first()
            if row is None or row.modseq <= since:
                return (0 if row is None else int(row.modseq)), []
            user_id, upto = int(row.id), int(row.modseq)
            events: list[StoreEvent] = []
            renames = conn.execute(
                select(
                    t.mailbox_rename.c.mailbox_id,
                    t.mailbox_rename.c.old_name,
                    t.mailbox_rename.c.new_name,
                    t.mailbox_rename.c.modseq,
                )
                .where(
                    t.mailbox_rename.c.user_id == user_id, t.mailbox_rename.c.modseq.between(since + 1, upto)
                )
                .order_by(t.mailbox_rename.c.modseq)
            ).all()
            first_name: dict[int, str] = {}
            for r in renames:
                first_name.setdefault(r.mailbox_id, r.old_name)
                events.append(
                    StoreEvent(user, r.new_name, r.mailbox_id, EventKind.RENAME, (), r.modseq, r.old_name)
                )
            for tb in conn.execute(
                select(t.mailbox_tombstone).where(
                    t.mailbox_tombstone.c.user_id == user_id,
                    t.mailbox_tombstone.c.deleted_modseq.between(since + 1, upto),
                )
            ):
                events.append(
                    StoreEvent(user, tb.name, tb.mailbox_id, EventKind.DELETE, (), tb.deleted_modseq)
                )
            changed = conn.execute(
                select(t.mailbox.c.id, t.mailbox.c.name, t.mailbox.c.created_modseq).where(
                    t.mailbox.c.user_id == user_id, t.mailbox.c.highestmodseq > since
                )
            ).all()
            for mb in changed:
                if since < mb.created_modseq <= upto:
                    name = first_name.get(mb.id, mb.name)
                    events.append(StoreEvent(user, name, mb.id, EventKind.CREATE, (), mb.created_modseq))
                changed_uids = _uids_changed(conn, t.message, mb.id, since, upto)
                if changed_uids is not None:
                    uids, top = changed_uids
                    events.append(StoreEvent(user, mb.name, mb.id, EventKind.APPEND, uids, top))
                    events.append(StoreEvent(user, mb.name, mb.id, EventKind.FLAGS, uids, top))
                gone = _uids_changed(conn, t.expunged, mb.id, since, upto)
                if gone is not None:
                    events.append(StoreEvent(user, mb.name, mb.id, EventKind.EXPUNGE, *gone))
        events.sort(key=lambda e: e.modseq)
        return upto, events

    def event_names(self, mailbox_id: int, modseq: int, kind: EventKind) -> tuple[str, str | None]:
        """(name, old name) of a mailbox an event names only by id (a payload too long for pg_notify)."""
        with self._read() as conn:
            if kind is EventKind.RENAME:
                r = conn.execute(
                    select(t.mailbox_rename.c.new_name, t.mailbox_rename.c.old_name).where(
                        t.mailbox_rename.c.mailbox_id == mailbox_id, t.mailbox_rename.c.modseq == modseq
                    )
                ).first()
                if r is not None:
                    return r.new_name, r.old_name
            name = conn.execute(select(t.mailbox.c.name).where(t.mailbox.c.id == mailbox_id)).scalar()
            if name is None:
                name = conn.execute(
                    select(t.mailbox_tombstone.c.name)
                    .where(t.mailbox_tombstone.c.mailbox_id == mailbox_id)
                    .order_by(t.mailbox_tombstone.c.deleted_modseq.desc())
                ).scalar()
            return str(name or ""), None


def _uids_changed(
    conn: Connection, table: Table, mailbox_id: int, since: int, upto: int
) -> tuple[tuple[int, ...], int] | None:
    """The UIDs of `table` (messages or expunged) in the mailbox whose modseq is in (since, upto],
    sorted, and the highest such modseq; None if there are none."""
    rows = conn.execute(
        select(table.c.uid, table.c.modseq).where(
            table.c.mailbox_id == mailbox_id, table.c.modseq.between(since + 1, upto)
        )
    ).all()
    if not rows:
        return None
    return tuple(sorted(r.uid for r in rows)), max(r.modseq for r in rows)
