"""Messages: APPEND, FETCH, STORE, EXPUNGE, COPY, MOVE and what changed since a MODSEQ."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    NoSuchMailbox,
    NoSuchMessage,
    NoSuchUser,
)
from cpmsync.msgstore.hub import EventKind, StoreEvent
from cpmsync.msgstore.message_meta import parse_meta
from cpmsync.msgstore.records import (
    AppendResult,
    CopyResult,
    ExpungeResult,
    FlagMode,
    MailboxChanges,
    MessageRecord,
    MoveResult,
    StoreResult,
    UidSet,
)
from cpmsync.msgstore.store.engine import StoreEngine, _Txn
from cpmsync.msgstore.store.statements import (
    _DELETED,
    _MSG_COLS,
    _chunks,
    _flags_of,
    _kw_text,
    _lookup_name,
    _new_objectid,
    _RawStatement,
    _record,
    _record_of_tuple,
    _split_flags,
    _to_epoch,
    _uid_filter,
    _uid_ranges,
)


class MessageOps(StoreEngine):
    """Messages: APPEND, FETCH, STORE, EXPUNGE, COPY, MOVE and what changed since a MODSEQ."""

    # ================================================================ messages

    def append(
        self,
        user: str,
        mailbox: str | int,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
        *,
        origin: object | None = None,
        wait: bool = True,
    ) -> AppendResult:
        """APPEND: one MODSEQ, the next UID; returns APPENDUID data (RFC 4315). `wait=False`:
        StoreBusy at once, nothing done, if another writer holds the lock (a caller on an event
        loop that must not block then goes to a worker thread and waits there)."""
        bits, keywords = _split_flags(flags)
        epoch, tz_min, day = _to_epoch(internaldate)
        meta = parse_meta(data)
        where: dict[str, Any]
        if isinstance(mailbox, int):
            take_uid, where = self._raw_take_uid_by_id, {"p_mb": mailbox}
            what = f"#{mailbox}"
        else:
            take_uid, where = self._raw_take_uid_by_name, {"p_name": _lookup_name(mailbox)}
            what = repr(mailbox)
        with self._raw_writer(user, wait=wait) as (cur, events):
            urow = self._raw_take_modseq.run(cur, {"p_user": user})
            if urow is None:
                raise NoSuchUser(f"no such user {user!r}")
            user_id, modseq = urow
            # Raising rolls the whole transaction back, the user's counter bump included.
            mrow = take_uid.run(cur, {"p_uid": user_id, "p_modseq": modseq, **where})
            if mrow is None:
                raise NoSuchMailbox(f"no such mailbox {what}")
            mb_id, mb_name, uidnext, uidvalidity = mrow
            uid = uidnext - 1
            blob_id = self._raw_insert_blob.run(cur, {"data": data})[0]
            self._raw_insert_message.run(
                cur,
                {
                    "mailbox_id": mb_id,
                    "uid": uid,
                    "modseq": modseq,
                    "sysflags": bits,
                    "keywords": _kw_text(keywords),
                    "internaldate": epoch,
                    "tz_min": tz_min,
                    "internal_day": day,
                    "sent_day": meta.sent_day,
                    "size": len(data),
                    "blob_id": blob_id,
                    "emailid": _new_objectid("M"),
                    "threadid": meta.threadid,
                },
            )
            events.append(StoreEvent(user, mb_name, mb_id, EventKind.APPEND, (uid,), modseq, None, origin))
        return AppendResult(mailbox_id=mb_id, uidvalidity=uidvalidity, uid=uid, modseq=modseq)

    def uids(self, user: str, mailbox: str | int) -> list[int]:
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            return [
                r[0]
                for r in conn.execute(
                    select(t.message.c.uid).where(t.message.c.mailbox_id == mb.id).order_by(t.message.c.uid)
                )
            ]

    def _fetch_rows(
        self,
        conn: Connection,
        mailbox_id: int,
        uids: UidSet | None,
        changedsince: int | None,
        with_data: bool,
    ) -> list[MessageRecord]:
        clause, recheck = _uid_filter(t.message.c.uid, uids)
        cols: list[Any] = list(_MSG_COLS)
        q = select(*cols).where(t.message.c.mailbox_id == mailbox_id, clause)
        if with_data:
            q = (
                select(*cols, t.blob.c.data)
                .select_from(t.message.join(t.blob, t.blob.c.id == t.message.c.blob_id))
                .where(t.message.c.mailbox_id == mailbox_id, clause)
            )
        if changedsince is not None:
            q = q.where(t.message.c.modseq > changedsince)
        out = []
        for r in conn.execute(q.order_by(t.message.c.uid)):
            if recheck is not None and r.uid not in recheck:
                continue
            out.append(_record(r, r.data if with_data else None))
        return out

    def fetch(
        self,
        user: str,
        mailbox: str | int,
        uids: UidSet | None,
        *,
        changedsince: int | None = None,
        with_data: bool = False,
    ) -> list[MessageRecord]:
        """Metadata (and bytes if asked) of the messages in `uids`, ascending UID; CHANGEDSINCE filters."""
        if isinstance(mailbox, int):
            found = self._fetch_by_id(user, mailbox, uids, changedsince, with_data)
            if found:  # none: the path below tells a missing mailbox or user from no messages
                return found
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            return self._fetch_rows(conn, mb.id, uids, changedsince, with_data)

    def fetch_now(
        self,
        user: str,
        mailbox_id: int,
        uids: UidSet | None,
        *,
        changedsince: int | None = None,
        with_data: bool = False,
    ) -> list[MessageRecord] | None:
        """`fetch` of a session's selected mailbox for the event loop (the caller bounds the UIDs
        and so the work), or None when it found no message (`fetch` then tells a missing mailbox
        or user from none). Never waits: StoreBusy when SQLite is busy."""
        return self._fetch_by_id(user, mailbox_id, uids, changedsince, with_data, wait=False) or None

    def _fetch_by_id(
        self,
        user: str,
        mailbox_id: int,
        uids: UidSet | None,
        changedsince: int | None,
        with_data: bool,
        *,
        wait: bool = True,
    ) -> list[MessageRecord]:
        """FETCH's hot path (a session's selected mailbox): one precompiled SELECT on the DBAPI
        cursor, the user's ownership of the mailbox checked inside it. One statement per number
        of UID ranges (padded, `_uid_ranges`), so random sequence sets do not each cost a compile."""
        query = self._fetch_query(user, mailbox_id, uids, changedsince, with_data)
        if query is None:
            return []
        stmt, values, recheck = query
        return _records(self._raw_read(stmt, values, wait=wait), recheck)

    def _fetch_query(
        self, user: str, mailbox_id: int, uids: UidSet | None, changedsince: int | None, with_data: bool
    ) -> tuple[_RawStatement, dict[str, Any], UidSet | None] | None:
        """The precompiled SELECT of `_fetch_by_id`, its values and the UIDs to re-check in
        Python (None: nothing to select)."""
        recheck: UidSet | None = None
        values: dict[str, Any] = {"p_user": user, "p_mb": mailbox_id}
        ranges: list[tuple[int, int]] = []
        if uids is not None and not uids.is_all:
            if not uids.ranges:
                return None
            ranges, recheck = _uid_ranges(uids)
        _range_values(values, ranges)
        if changedsince is not None:
            values["p_since"] = changedsince
        key = (len(ranges), with_data, changedsince is not None)
        stmt = self._raw_fetch.get(key)
        if stmt is None:
            stmt = self._raw_fetch[key] = _RawStatement(_fetch_statement(*key), self._engine.dialect)
        return stmt, values, recheck

    def _raw_locked_mailbox(self, cur: Any, user: str, mailbox_id: int) -> tuple[int, int, str]:
        """In a raw write transaction: (user id, the user's MODSEQ, the mailbox's name), the user's
        row locked as `_write` locks it and the mailbox checked to be the user's."""
        urow = self._raw_lock_user.run(cur, {"p_user": user})
        if urow is None:
            raise NoSuchUser(f"no such user {user!r}")
        mrow = self._raw_mailbox_name.run(cur, {"p_uid": urow[0], "p_mb": mailbox_id})
        if mrow is None:
            raise NoSuchMailbox(f"no such mailbox #{mailbox_id}")
        return urow[0], urow[1], mrow[0]

    def _raw_save_modseq(self, cur: Any, user_id: int, mailbox_id: int, modseq: int) -> None:
        """The change's MODSEQ becomes the mailbox's HIGHESTMODSEQ and the user's counter."""
        self._raw_set_highestmodseq.run(cur, {"p_mb": mailbox_id, "p_modseq": modseq})
        self._raw_set_user_modseq.run(cur, {"p_id": user_id, "p_modseq": modseq})

    def fetch_data(self, user: str, mailbox: str | int, uid: int) -> bytes:
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            data = conn.execute(
                select(t.blob.c.data)
                .select_from(t.message.join(t.blob, t.blob.c.id == t.message.c.blob_id))
                .where(t.message.c.mailbox_id == mb.id, t.message.c.uid == uid)
            ).scalar()
        if data is None:
            raise NoSuchMessage(f"no message with UID {uid}")
        return bytes(data)

    def store_flags(
        self,
        user: str,
        mailbox: str | int,
        uids: UidSet | None,
        mode: FlagMode,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
        origin: object | None = None,
    ) -> StoreResult:
        """STORE: one MODSEQ for every message it changes; UNCHANGEDSINCE failures go to `modified`."""
        if isinstance(mailbox, int):
            return self._raw_store_flags(user, mailbox, uids, mode, flags, unchangedsince, origin)
        bits, keywords = _split_flags(flags)
        with self._write(user, origin) as txn:
            conn = txn.conn
            mb = self._mailbox(conn, txn.user_id, mailbox)
            rows = self._fetch_rows(conn, mb.id, uids, None, False)
            modified, passed, changed = _flag_plan(rows, mode, bits, keywords, unchangedsince)
            modseq: int | None = None
            if changed:
                modseq = txn.next_modseq()
                conn.execute(
                    update(t.message)
                    .where(t.message.c.mailbox_id == mb.id, t.message.c.uid == bindparam("b_uid"))
                    .values(sysflags=bindparam("b_bits"), keywords=bindparam("b_kw"), modseq=modseq),
                    [{"b_uid": rec.uid, "b_bits": nb, "b_kw": _kw_text(nk)} for rec, nb, nk in changed],
                )
                conn.execute(update(t.mailbox).where(t.mailbox.c.id == mb.id).values(highestmodseq=modseq))
                txn.emit(mb.name, mb.id, EventKind.FLAGS, [rec.uid for rec, _, _ in changed], modseq)
            return _store_result(passed, changed, modified, modseq)

    def _raw_store_flags(
        self,
        user: str,
        mailbox_id: int,
        uids: UidSet | None,
        mode: FlagMode,
        flags: Iterable[str],
        unchangedsince: int | None,
        origin: object | None,
    ) -> StoreResult:
        """STORE on a mailbox by id (a session's selected one), on the DBAPI cursor: the rows read
        with FETCH's precompiled SELECT and rewritten with one executemany, no Core statement
        built, compiled or cached per call (they were most of a STORE's CPU)."""
        bits, keywords = _split_flags(flags)
        with self._raw_writer(user) as (cur, events):
            user_id, modseq, name = self._raw_locked_mailbox(cur, user, mailbox_id)
            query = self._fetch_query(user, mailbox_id, uids, None, False)
            rows = [] if query is None else _records(query[0].rows(cur, query[1]), query[2])
            modified, passed, changed = _flag_plan(rows, mode, bits, keywords, unchangedsince)
            if not changed:
                return _store_result(passed, changed, modified, None)
            modseq += 1
            self._raw_set_message_flags.run_many(
                cur,
                [
                    {
                        "p_mb": mailbox_id,
                        "p_uid": rec.uid,
                        "p_bits": nb,
                        "p_kw": _kw_text(nk),
                        "p_modseq": modseq,
                    }
                    for rec, nb, nk in changed
                ],
            )
            self._raw_save_modseq(cur, user_id, mailbox_id, modseq)
            changed_uids = tuple(rec.uid for rec, _, _ in changed)
            events.append(
                StoreEvent(user, name, mailbox_id, EventKind.FLAGS, changed_uids, modseq, None, origin)
            )
            return _store_result(passed, changed, modified, modseq)

    def _expunge_locked(self, txn: _Txn, mb: Any, uid_rows: Sequence[Any], kind_modseq: int) -> None:
        conn = txn.conn
        ids = [r.id for r in uid_rows]
        for chunk in _chunks(ids):
            conn.execute(delete(t.message).where(t.message.c.id.in_(chunk)))
        # A UID can be expunged only once per UIDVALIDITY, so these never collide.
        conn.execute(
            insert(t.expunged),
            [{"mailbox_id": mb.id, "uid": r.uid, "modseq": kind_modseq} for r in uid_rows],
        )
        self._gc_blobs(conn, list({r.blob_id for r in uid_rows}))
        conn.execute(update(t.mailbox).where(t.mailbox.c.id == mb.id).values(highestmodseq=kind_modseq))
        txn.emit(mb.name, mb.id, EventKind.EXPUNGE, [r.uid for r in uid_rows], kind_modseq)

    def expunge(
        self, user: str, mailbox: str | int, uids: UidSet | None = None, *, origin: object | None = None
    ) -> ExpungeResult:
        """EXPUNGE / UID EXPUNGE (RFC 4315): removes \\Deleted messages, keeps (uid, modseq) tombstones."""
        if isinstance(mailbox, int):
            return self._raw_expunge(user, mailbox, uids, origin)
        with self._write(user, origin) as txn:
            conn = txn.conn
            mb = self._mailbox(conn, txn.user_id, mailbox)
            clause, recheck = _uid_filter(t.message.c.uid, uids)
            rows = [
                r
                for r in conn.execute(
                    select(t.message.c.id, t.message.c.uid, t.message.c.blob_id)
                    .where(
                        t.message.c.mailbox_id == mb.id,
                        t.message.c.sysflags.op("&")(_DELETED) != 0,
                        clause,
                    )
                    .order_by(t.message.c.uid)
                )
                if recheck is None or r.uid in recheck
            ]
            if not rows:
                return ExpungeResult(uids=[], modseq=None)
            modseq = txn.next_modseq()
            self._expunge_locked(txn, mb, rows, modseq)
            return ExpungeResult(uids=[r.uid for r in rows], modseq=modseq)

    def _raw_expunge(
        self, user: str, mailbox_id: int, uids: UidSet | None, origin: object | None
    ) -> ExpungeResult:
        """EXPUNGE of a mailbox by id (a session's selected one) on the DBAPI cursor: one
        precompiled SELECT per number of UID ranges, then executemany for the rows, tombstones and
        blobs left unused: the same statements as `_expunge_locked` without Core's per-call cost."""
        ranges: list[tuple[int, int]] = []
        recheck: UidSet | None = None
        if uids is not None and not uids.is_all and uids.ranges:
            ranges, recheck = _uid_ranges(uids)
        values: dict[str, Any] = {"p_mb": mailbox_id}
        _range_values(values, ranges)
        stmt = self._raw_expunge_candidates.get(len(ranges))
        if stmt is None:
            stmt = _RawStatement(_expunge_candidates(len(ranges)), self._engine.dialect)
            self._raw_expunge_candidates[len(ranges)] = stmt
        with self._raw_writer(user) as (cur, events):
            user_id, modseq, name = self._raw_locked_mailbox(cur, user, mailbox_id)
            if uids is not None and not uids.is_all and not uids.ranges:
                return ExpungeResult(uids=[], modseq=None)
            rows = [r for r in stmt.rows(cur, values) if recheck is None or r[1] in recheck]
            if not rows:
                return ExpungeResult(uids=[], modseq=None)
            modseq += 1
            gone = [r[1] for r in rows]
            self._raw_delete_message.run_many(cur, [{"p_id": r[0]} for r in rows])
            # A UID can be expunged only once per UIDVALIDITY, so these never collide.
            self._raw_insert_expunged.run_many(
                cur, [{"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in gone]
            )
            blobs = sorted({r[2] for r in rows if r[2] is not None})
            self._raw_delete_unused_blob.run_many(cur, [{"p_blob": b} for b in blobs])
            self._raw_save_modseq(cur, user_id, mailbox_id, modseq)
            events.append(
                StoreEvent(user, name, mailbox_id, EventKind.EXPUNGE, tuple(gone), modseq, None, origin)
            )
            return ExpungeResult(uids=gone, modseq=modseq)

    def _copy_locked(
        self, txn: _Txn, src_id: int, uids: UidSet | None, dst_id: int, *, move: bool
    ) -> tuple[CopyResult, list[int], int | None]:
        conn = txn.conn
        src = self._mailbox(conn, txn.user_id, src_id)
        dst = self._mailbox(conn, txn.user_id, dst_id)
        clause, recheck = _uid_filter(t.message.c.uid, uids)
        rows = [
            r
            for r in conn.execute(
                select(t.message).where(t.message.c.mailbox_id == src.id, clause).order_by(t.message.c.uid)
            )
            if recheck is None or r.uid in recheck
        ]
        if not rows:
            return CopyResult(dst.uidvalidity, [], [], None), [], None
        modseq = txn.next_modseq()
        first = dst.uidnext
        dst_uids = list(range(first, first + len(rows)))
        conn.execute(
            insert(t.message),
            [
                {
                    "mailbox_id": dst.id,
                    "uid": new_uid,
                    "modseq": modseq,
                    "sysflags": r.sysflags,
                    "keywords": r.keywords,
                    "internaldate": r.internaldate,
                    "tz_min": r.tz_min,
                    "internal_day": r.internal_day,
                    "sent_day": r.sent_day,
                    "size": r.size,
                    "blob_id": r.blob_id,
                    "emailid": r.emailid,  # RFC 8474: a copy is the same email
                    "threadid": r.threadid,
                }
                for r, new_uid in zip(rows, dst_uids, strict=True)
            ],
        )
        conn.execute(
            update(t.mailbox)
            .where(t.mailbox.c.id == dst.id)
            .values(uidnext=first + len(rows), highestmodseq=modseq)
        )
        txn.emit(dst.name, dst.id, EventKind.APPEND, dst_uids, modseq)
        copy = CopyResult(dst.uidvalidity, [r.uid for r in rows], dst_uids, modseq)
        if not move:
            return copy, [], None
        # The source gets its own MODSEQ: MODSEQs stay unique per mailbox change (CR I.3).
        src_modseq = txn.next_modseq()
        self._expunge_locked(txn, src, rows, src_modseq)
        return copy, [r.uid for r in rows], src_modseq

    def copy(
        self, user: str, src: str | int, uids: UidSet | None, dst: str | int, *, origin: object | None = None
    ) -> CopyResult:
        """COPY / UID COPY: flags and INTERNALDATE kept (not \\Recent), EMAILID kept; COPYUID data."""
        with self._write(user, origin) as txn:
            s = self._mailbox(txn.conn, txn.user_id, src)
            d = self._mailbox(txn.conn, txn.user_id, dst)
            return self._copy_locked(txn, s.id, uids, d.id, move=False)[0]

    def move(
        self, user: str, src: str | int, uids: UidSet | None, dst: str | int, *, origin: object | None = None
    ) -> MoveResult:
        """MOVE (RFC 6851) in one transaction: APPEND to dst, then EXPUNGE from src."""
        with self._write(user, origin) as txn:
            s = self._mailbox(txn.conn, txn.user_id, src)
            d = self._mailbox(txn.conn, txn.user_id, dst)
            copy, expunged, modseq = self._copy_locked(txn, s.id, uids, d.id, move=True)
            return MoveResult(copy=copy, expunged=expunged, modseq=modseq)

    def _vanished(self, conn: Connection, mailbox_id: int, modseq: int, uids: UidSet | None) -> list[int]:
        clause, recheck = _uid_filter(t.expunged.c.uid, uids)
        return [
            r[0]
            for r in conn.execute(
                select(t.expunged.c.uid)
                .where(t.expunged.c.mailbox_id == mailbox_id, t.expunged.c.modseq > modseq, clause)
                .order_by(t.expunged.c.uid)
            )
            if recheck is None or r[0] in recheck
        ]

    def changes_since(
        self, user: str, mailbox: str | int, modseq: int, uids: UidSet | None = None
    ) -> MailboxChanges:
        """FETCH (CHANGEDSINCE) and QRESYNC: changed messages and VANISHED UIDs, one snapshot."""
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            return MailboxChanges(
                changed=self._fetch_rows(conn, mb.id, uids, modseq, False),
                vanished=self._vanished(conn, mb.id, modseq, uids),
            )

    def vanished_since(
        self, user: str, mailbox: str | int, modseq: int, uids: UidSet | None = None
    ) -> list[int]:
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            return self._vanished(conn, mb.id, modseq, uids)


def _records(rows: Sequence[Any], recheck: UidSet | None) -> list[MessageRecord]:
    out = [_record_of_tuple(r) for r in rows]
    return out if recheck is None else [r for r in out if r.uid in recheck]


def _range_values(values: dict[str, Any], ranges: Sequence[tuple[int, int]]) -> None:
    """The :lo<i>/:hi<i> values of a statement from `_uid_ranges` ranges."""
    for i, (lo, hi) in enumerate(ranges):
        values[f"lo{i}"], values[f"hi{i}"] = lo, hi


def _uid_in_ranges(col: Any, n_ranges: int) -> Any:
    """`col` within one of the ranges (:lo0, :hi0) ... (see `_range_values`)."""
    return or_(*[col.between(bindparam(f"lo{i}"), bindparam(f"hi{i}")) for i in range(n_ranges)])


def _flag_plan(
    rows: Sequence[MessageRecord],
    mode: FlagMode,
    bits: int,
    keywords: frozenset[str],
    unchangedsince: int | None,
) -> tuple[
    list[int],
    list[tuple[MessageRecord, int, frozenset[str]]],
    list[tuple[MessageRecord, int, frozenset[str]]],
]:
    """STORE's decision per row: (UIDs failing UNCHANGEDSINCE, rows that pass with their new bits
    and keywords, those of them whose flags change)."""
    modified: list[int] = []
    passed: list[tuple[MessageRecord, int, frozenset[str]]] = []
    for rec in rows:
        if unchangedsince is not None and rec.modseq > unchangedsince:
            modified.append(rec.uid)
            continue
        old_bits, old_kw = _split_flags(rec.flags)
        if mode is FlagMode.REPLACE:
            nb, nk = bits, keywords
        elif mode is FlagMode.ADD:
            nb, nk = old_bits | bits, old_kw | keywords
        else:
            nb, nk = old_bits & ~bits, old_kw - keywords
        passed.append((rec, nb, nk))
    changed = [(rec, nb, nk) for rec, nb, nk in passed if _flags_of(nb, _kw_text(nk)) != rec.flags]
    return modified, passed, changed


def _store_result(
    passed: Sequence[tuple[MessageRecord, int, frozenset[str]]],
    changed: Sequence[tuple[MessageRecord, int, frozenset[str]]],
    modified: Sequence[int],
    modseq: int | None,
) -> StoreResult:
    changed_uids = {rec.uid for rec, _, _ in changed}
    updated = [
        MessageRecord(
            uid=rec.uid,
            modseq=modseq if rec.uid in changed_uids and modseq is not None else rec.modseq,
            flags=_flags_of(nb, _kw_text(nk)),
            internaldate=rec.internaldate,
            size=rec.size,
            emailid=rec.emailid,
            threadid=rec.threadid,
        )
        for rec, nb, nk in passed
    ]
    return StoreResult(
        updated=updated,
        changed_uids=sorted(changed_uids),
        modified=UidSet.from_uids(modified),
        modseq=modseq,
    )


def _expunge_candidates(n_ranges: int) -> Any:
    """SELECT id, uid, blob_id of the \\Deleted messages of mailbox :p_mb [UIDs in ranges], by UID."""
    m = t.message
    q = select(m.c.id, m.c.uid, m.c.blob_id).where(
        m.c.mailbox_id == bindparam("p_mb"), m.c.sysflags.op("&")(_DELETED) != 0
    )
    if n_ranges:
        q = q.where(_uid_in_ranges(m.c.uid, n_ranges))
    return q.order_by(m.c.uid)


def _fetch_statement(n_ranges: int, with_data: bool, changedsince: bool) -> Any:
    """SELECT _MSG_COLS [, blob data] of mailbox :p_mb if user :p_user owns it, UIDs in ranges
    (:lo0, :hi0) ... (none: all), [MODSEQ > :p_since], by UID."""
    m = t.message
    owned = (
        select(t.mailbox.c.id)
        .select_from(t.mailbox.join(t.user, t.user.c.id == t.mailbox.c.user_id))
        .where(t.mailbox.c.id == bindparam("p_mb"), t.user.c.name == bindparam("p_user"))
        .scalar_subquery()
    )
    if with_data:
        q = select(*_MSG_COLS, t.blob.c.data).select_from(m.join(t.blob, t.blob.c.id == m.c.blob_id))
    else:
        q = select(*_MSG_COLS)
    q = q.where(m.c.mailbox_id == owned)
    if n_ranges:
        q = q.where(_uid_in_ranges(m.c.uid, n_ranges))
    if changedsince:
        q = q.where(m.c.modseq > bindparam("p_since"))
    return q.order_by(m.c.uid)
