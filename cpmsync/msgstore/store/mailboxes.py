"""Mailboxes: create, delete, rename, subscribe, NOMODSEQ, STATUS and SELECT."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    CannotDeleteInbox,
    InvalidName,
    MailboxExists,
    MailboxHasChildren,
    NoSuchMailbox,
    NoSuchSubscription,
    NoSuchUser,
)
from cpmsync.msgstore.hub import EventKind
from cpmsync.msgstore.records import (
    MailboxStatus,
    SelectInfo,
    UidSet,
)
from cpmsync.msgstore.store.engine import _Txn
from cpmsync.msgstore.store.messages import MessageOps
from cpmsync.msgstore.store.statements import (
    _INBOX,
    DELIMITER,
    _ancestors,
    _check_name,
    _kw_parse,
    _lookup_name,
    _parent_of,
    _RawStatement,
    _status_row,
)

# A function that runs one of the store's raw statements and returns its rows.
_Rows = Callable[[_RawStatement, dict[str, Any]], Sequence[Any]]


class MailboxOps(MessageOps):  # renaming INBOX moves its messages (_copy_locked)
    """Mailboxes: create, delete, rename, subscribe, NOMODSEQ, STATUS and SELECT."""

    # ================================================================ mailboxes

    def _create_parents(self, txn: _Txn, name: str) -> None:
        ancestors = _ancestors(name)
        have = self._existing_names(txn.conn, txn.user_id, ancestors)
        for a in ancestors:
            if a not in have:
                self._insert_mailbox(txn, a)

    def create_mailbox(self, user: str, name: str, *, origin: object | None = None) -> MailboxStatus:
        """CREATE: missing parents are created too (RFC 3501 6.3.3), each with its own MODSEQ."""
        name = _check_name(name)
        with self._write(user, origin) as txn:
            if self._existing_names(txn.conn, txn.user_id, [name]):
                raise MailboxExists(f"mailbox {name!r} already exists")
            self._create_parents(txn, name)
            mb_id, _ = self._insert_mailbox(txn, name)
            return self._status(txn.conn, txn.user_id, mb_id)

    def delete_mailbox(self, user: str, name: str, *, origin: object | None = None) -> None:
        """DELETE; refused while the mailbox has children (as Dovecot does), INBOX never."""
        name = _check_name(name)
        if name == _INBOX:
            raise CannotDeleteInbox("INBOX cannot be deleted")
        with self._write(user, origin) as txn:
            conn = txn.conn
            mb = self._mailbox(conn, txn.user_id, name)
            child = conn.execute(
                select(t.mailbox.c.id)
                .where(t.mailbox.c.user_id == txn.user_id, t.mailbox.c.parent == name)
                .limit(1)
            ).first()
            if child is not None:
                raise MailboxHasChildren(f"mailbox {name!r} has children, delete them first")
            modseq = txn.next_modseq()
            conn.execute(
                insert(t.mailbox_tombstone).values(
                    user_id=txn.user_id,
                    mailbox_id=mb.id,
                    name=mb.name,
                    mailboxid=mb.mailboxid,
                    created_modseq=mb.created_modseq,
                    deleted_modseq=modseq,
                    nomodseq=mb.nomodseq,
                )
            )
            blob_ids = [
                r[0]
                for r in conn.execute(
                    select(t.message.c.blob_id).where(t.message.c.mailbox_id == mb.id).distinct()
                )
            ]
            conn.execute(delete(t.message).where(t.message.c.mailbox_id == mb.id))
            conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id == mb.id))
            self._gc_blobs(conn, blob_ids)
            conn.execute(delete(t.mailbox).where(t.mailbox.c.id == mb.id))
            txn.emit(mb.name, mb.id, EventKind.DELETE, modseq=modseq)

    def rename_mailbox(self, user: str, old: str, new: str, *, origin: object | None = None) -> MailboxStatus:
        """RENAME with children; INBOX per RFC 3501 6.3.5 (its messages move, INBOX stays, empty)."""
        old = _check_name(old)
        new = _check_name(new)
        if new == old or new.startswith(old + DELIMITER):
            raise InvalidName(f"cannot rename {old!r} to {new!r}")
        with self._write(user, origin) as txn:
            conn = txn.conn
            mb = self._mailbox(conn, txn.user_id, old)
            if self._existing_names(conn, txn.user_id, [new]):
                raise MailboxExists(f"mailbox {new!r} already exists")
            self._create_parents(txn, new)
            if old == _INBOX:
                dst_id, _ = self._insert_mailbox(txn, new)
                uids = [
                    r[0] for r in conn.execute(select(t.message.c.uid).where(t.message.c.mailbox_id == mb.id))
                ]
                if uids:
                    self._copy_locked(txn, mb.id, UidSet.from_uids(uids), dst_id, move=True)
                return self._status(conn, txn.user_id, dst_id)
            # The mailbox and every descendant, outermost first.
            rows = conn.execute(
                select(t.mailbox.c.id, t.mailbox.c.name).where(
                    t.mailbox.c.user_id == txn.user_id,
                    or_(
                        t.mailbox.c.name == old,
                        func.substr(t.mailbox.c.name, 1, len(old) + 1) == old + DELIMITER,
                    ),
                )
            ).all()
            for row in sorted(rows, key=lambda r: len(r.name)):
                new_name = new + row.name[len(old) :]
                modseq = txn.next_modseq()
                conn.execute(
                    update(t.mailbox)
                    .where(t.mailbox.c.id == row.id)
                    .values(name=new_name, parent=_parent_of(new_name), highestmodseq=modseq)
                )
                conn.execute(
                    insert(t.mailbox_rename).values(
                        user_id=txn.user_id,
                        mailbox_id=row.id,
                        old_name=row.name,
                        new_name=new_name,
                        modseq=modseq,
                    )
                )
                txn.emit(new_name, row.id, EventKind.RENAME, modseq=modseq, old_name=row.name)
            self._move_subscriptions(conn, txn.user_id, old, new)
            return self._status(conn, txn.user_id, mb.id)

    @staticmethod
    def _move_subscriptions(conn: Connection, user_id: int, old: str, new: str) -> None:
        subs = conn.execute(
            select(t.subscription.c.id, t.subscription.c.name).where(
                t.subscription.c.user_id == user_id,
                or_(
                    t.subscription.c.name == old,
                    func.substr(t.subscription.c.name, 1, len(old) + 1) == old + DELIMITER,
                ),
            )
        ).all()
        for s in subs:
            target = new + s.name[len(old) :]
            taken = conn.execute(
                select(t.subscription.c.id).where(
                    t.subscription.c.user_id == user_id, t.subscription.c.name == target
                )
            ).first()
            if taken is not None:
                conn.execute(delete(t.subscription).where(t.subscription.c.id == s.id))
            else:
                conn.execute(update(t.subscription).where(t.subscription.c.id == s.id).values(name=target))

    def subscribe(self, user: str, name: str, *, origin: object | None = None) -> None:
        """SUBSCRIBE (idempotent). No MODSEQ: a subscription is not mailbox content."""
        name = _check_name(name)
        with self._write(user, origin) as txn:
            have = txn.conn.execute(
                select(t.subscription.c.id).where(
                    t.subscription.c.user_id == txn.user_id, t.subscription.c.name == name
                )
            ).first()
            if have is None:
                txn.conn.execute(insert(t.subscription).values(user_id=txn.user_id, name=name))
            mb_id = txn.conn.execute(
                select(t.mailbox.c.id).where(t.mailbox.c.user_id == txn.user_id, t.mailbox.c.name == name)
            ).scalar()
            txn.emit(name, int(mb_id or 0), EventKind.SUBSCRIBE)

    def unsubscribe(self, user: str, name: str, *, origin: object | None = None) -> None:
        name = _check_name(name)
        with self._write(user, origin) as txn:
            res = txn.conn.execute(
                delete(t.subscription).where(
                    t.subscription.c.user_id == txn.user_id, t.subscription.c.name == name
                )
            )
            if res.rowcount == 0:
                raise NoSuchSubscription(f"not subscribed to {name!r}")
            mb_id = txn.conn.execute(
                select(t.mailbox.c.id).where(t.mailbox.c.user_id == txn.user_id, t.mailbox.c.name == name)
            ).scalar()
            txn.emit(name, int(mb_id or 0), EventKind.UNSUBSCRIBE)

    def set_nomodseq(
        self, user: str, mailbox: str | int, on: bool = True, *, origin: object | None = None
    ) -> None:
        """Mark a mailbox NOMODSEQ (CR I.5) or clear it. Takes a MODSEQ either way, so clearing makes
        the mailbox show up in the next CHANGEDSINCE (its client must resync it)."""
        with self._write(user, origin) as txn:
            mb = self._mailbox(txn.conn, txn.user_id, mailbox)
            modseq = txn.next_modseq()
            txn.conn.execute(
                update(t.mailbox).where(t.mailbox.c.id == mb.id).values(nomodseq=on, highestmodseq=modseq)
            )
            txn.emit(mb.name, mb.id, EventKind.NOMODSEQ, modseq=modseq)

    def status(self, user: str, mailbox: str | int) -> MailboxStatus:
        """STATUS: MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE MAILBOXID."""
        if isinstance(mailbox, int):  # a session's own mailbox (after EXPUNGE, on push): no Core
            owner = self._raw_read(self._raw_user_id, {"p_user": user})
            rows = self._raw_read(self._raw_status_of_one, {"p_mb": mailbox}) if owner else []
            if rows and rows[0][2] == owner[0][0]:
                return _status_row(rows[0])
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            mb = self._mailbox(conn, user_id, mailbox)
            return self._status(conn, user_id, mb.id)

    def select(self, user: str, mailbox: str | int, *, readonly: bool) -> SelectInfo:
        """SELECT (claims \\Recent, RFC 3501 2.3.2) or EXAMINE (readonly, claims nothing)."""
        with self._raw_snapshot() as cur:
            info, _first_recent = self._select(lambda stmt, values: stmt.rows(cur, values), user, mailbox)
        if readonly or not info.recent_uids:
            return info  # nothing to claim: no need to queue for the write lock
        with self._write(user) as txn:
            conn = txn.conn
            info, first_recent = self._select(
                lambda stmt, values: conn.exec_driver_sql(stmt.sql, stmt.params(values)).all(), user, mailbox
            )
            uidnext = info.status.uidnext
            if first_recent < uidnext:
                claim = update(t.mailbox).where(t.mailbox.c.id == info.id).values(first_recent_uid=uidnext)
                conn.execute(claim)
            return info

    def select_now(
        self, user: str, mailbox: str | int, *, readonly: bool, max_messages: int
    ) -> SelectInfo | None:
        """`select` for the event loop, or None: a mailbox of more than `max_messages` messages
        (its reads would hold the loop), and a SELECT that would claim \\Recent (a write, which
        may wait for the lock), are for `select` on a worker thread. Never waits: StoreBusy when
        SQLite is busy."""
        with self._raw_snapshot(wait=False) as cur:

            def rows(stmt: _RawStatement, values: dict[str, Any]) -> Sequence[Any]:
                cur.execute(stmt.sql, stmt.params(values))
                found: list[Any] = cur.fetchmany(max_messages + 1)
                return found

            info, _first_recent = self._select(rows, user, mailbox)
        if len(info.uids) > max_messages or (info.recent_uids and not readonly):
            return None
        return info

    def claim_recent(self, user: str, mailbox: str | int, uids: Sequence[int]) -> list[int]:
        """Messages that arrived while a read-write session had the mailbox selected are \\Recent
        for that session (RFC 3501 2.3.2); the first session to claim a UID gets it, no other."""
        if not uids:
            return []
        if isinstance(mailbox, int):
            # Most arrivals were claimed already by another session that had the mailbox selected
            # (the mark only moves up): then no write transaction, no wait for the write lock.
            row = self._raw_read(self._raw_first_recent, {"p_mb": mailbox, "p_user": user})
            if row and max(uids) < row[0][0]:
                return []
        with self._write(user) as txn:
            mb = self._mailbox(txn.conn, txn.user_id, mailbox)
            claimed = [u for u in uids if u >= mb.first_recent_uid]
            if claimed:
                txn.conn.execute(
                    update(t.mailbox).where(t.mailbox.c.id == mb.id).values(first_recent_uid=max(claimed) + 1)
                )
            return claimed

    def _select(self, rows: _Rows, user: str, mailbox: str | int) -> tuple[SelectInfo, int]:
        """SELECT's reads, run by `rows` (a read snapshot, or the write transaction that claims
        \\Recent): the mailbox's row, then one ordered pass over its messages for the UIDs, the
        [UNSEEN n] (the first message without \\Seen), the STATUS counts and the keywords in use.
        [UNSEEN n] and the counts were a SEARCH and a grouped join of their own: a first sync of
        10,000 folders spent most of its server time in SELECT. Also the mailbox's first UID
        not yet claimed as \\Recent."""
        if isinstance(mailbox, int):
            found = rows(self._raw_select_by_id, {"p_user": user, "p_mb": mailbox})
            what = f"#{mailbox}"
        else:
            found = rows(self._raw_select_by_name, {"p_user": user, "p_name": _lookup_name(mailbox)})
            what = repr(mailbox)
        if not found:
            if not rows(self._raw_user_id, {"p_user": user}):
                raise NoSuchUser(f"no such user {user!r}")
            raise NoSuchMailbox(f"no such mailbox {what}")
        mb_id, name, mailboxid, highestmodseq, nomodseq, uidnext, uidvalidity, first_recent_uid = found[0]
        uids: list[int] = []
        first_unseen: int | None = None
        unseen = size = 0
        keyword_texts: set[str] = set()
        for uid, seen_bit, msg_size, keywords in rows(self._raw_select_messages, {"p_mb": mb_id}):
            uids.append(uid)
            size += msg_size
            if not seen_bit:
                unseen += 1
                if first_unseen is None:
                    first_unseen = len(uids)
            if keywords:
                keyword_texts.add(keywords)
        kw: set[str] = set()
        for text in keyword_texts:
            kw |= _kw_parse(text)
        recent = [u for u in uids if u >= first_recent_uid]
        status = MailboxStatus(
            mb_id,
            name,
            len(uids),
            len(recent),
            uidnext,
            uidvalidity,
            unseen,
            0 if nomodseq else highestmodseq,
            size,
            mailboxid,
            bool(nomodseq),
        )
        info = SelectInfo(
            status=status, uids=uids, keywords=sorted(kw), recent_uids=recent, first_unseen=first_unseen
        )
        return info, first_recent_uid
