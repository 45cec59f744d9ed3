"""The store's plumbing: the SQLAlchemy engine, the per-user write lock and the transaction helpers
(read, admin, write with MODSEQ allocation and events after commit), lookups, and STATUS."""

from __future__ import annotations

import contextlib
import secrets
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    exists,
    insert,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    NoSuchMailbox,
    NoSuchUser,
    StoreBusy,
)
from cpmsync.msgstore.hub import ChangeHub, EventKind, StoreEvent
from cpmsync.msgstore.pg_payload import encode_notifications
from cpmsync.msgstore.records import (
    MailboxStatus,
)

if TYPE_CHECKING:
    from cpmsync.msgstore.pg_listener import PgChangeBus

from cpmsync.msgstore.store.statements import (
    _CHUNK,
    _DELETE_MESSAGE,
    _DELETE_UNUSED_BLOB,
    _EXPUNGED_KEYS,
    _FIRST_RECENT_UID,
    _INSERT_BLOB,
    _INSERT_EXPUNGED,
    _INSERT_MESSAGE,
    _LOCK_USER,
    _MAILBOX_BY_ID,
    _MAILBOX_BY_NAME,
    _MAILBOX_NAME,
    _MESSAGE_KEYS,
    _PASSWORD_HASH,
    _SAVE_USER_COUNTERS,
    _SELECT_MAILBOX_BY_ID,
    _SELECT_MAILBOX_BY_NAME,
    _SELECT_MESSAGES,
    _SET_HIGHESTMODSEQ,
    _SET_MESSAGE_FLAGS,
    _SET_USER_MODSEQ,
    _STATUS_OF_IDS,
    _STATUS_OF_ONE,
    _STATUS_OF_USER,
    _SUBSCRIBED_NAMES,
    _TAKE_UID_BY_ID,
    _TAKE_UID_BY_NAME,
    _TAKE_USER_MODSEQ,
    _USER_ID,
    _chunks,
    _lookup_name,
    _names_in,
    _new_objectid,
    _parent_of,
    _RawStatement,
    _status_row,
)


class _ThreadConnection:
    """A thread's own SQLite connection, detached from the pool: closed when that thread ends (its
    thread-local goes, and this with it) or when the store closes."""

    __slots__ = ("__weakref__", "busy", "busy_timeout_ms", "raw")

    def __init__(self, raw: Any, busy_timeout_ms: int) -> None:
        self.raw: Any = raw
        self.busy = False
        self.busy_timeout_ms = busy_timeout_ms  # what its PRAGMA busy_timeout is now

    def close(self) -> None:
        raw, self.raw = self.raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    def __del__(self) -> None:
        self.close()


@dataclass
class _Txn:
    """One write transaction of one user: allocates MODSEQs, collects events for after commit."""

    conn: Connection
    user_id: int
    user: str
    modseq: int
    uidvalidity_next: int
    origin: object | None
    start_modseq: int = 0
    start_uidvalidity: int = 0
    events: list[StoreEvent] = field(default_factory=list)

    def next_modseq(self) -> int:
        self.modseq += 1
        return self.modseq

    def next_uidvalidity(self) -> int:
        v = self.uidvalidity_next
        self.uidvalidity_next += 1
        return v

    def emit(
        self,
        mailbox: str,
        mailbox_id: int,
        kind: EventKind,
        uids: Sequence[int] = (),
        modseq: int = 0,
        old_name: str | None = None,
    ) -> None:
        self.events.append(
            StoreEvent(self.user, mailbox, mailbox_id, kind, tuple(uids), modseq, old_name, self.origin)
        )


class StoreEngine:
    """Connections, locks and transactions; the concern mixins (users, mailboxes, ...) build on it."""

    def __init__(
        self,
        url: str,
        *,
        hub: ChangeHub | None = None,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout_ms: int = 30_000,
        echo: bool = False,
    ) -> None:
        self.hub = hub if hub is not None else ChangeHub()
        u = make_url(url)
        if u.drivername in ("postgresql", "postgres"):
            # SQLAlchemy's default PostgreSQL driver is psycopg2; psycopg 3 is what we ship for.
            u = u.set(drivername="postgresql+psycopg")
        self._sqlite = u.get_backend_name() == "sqlite"
        self.url = u.render_as_string(hide_password=True)
        self._url = u
        # Names this process in its pg_notify payloads, so its listener tells its own commits apart.
        self.instance_id = secrets.token_hex(5)
        self._bus: PgChangeBus | None = None
        self.pg_channel = ""
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self._sqlite:
            if u.database and u.database != ":memory:":
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": sqlite_busy_timeout_ms / 1000,
            }
            kwargs["pool_size"] = 16
            kwargs["max_overflow"] = 48
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 40
            kwargs["pool_pre_ping"] = True
        self._engine: Engine = create_engine(u, **kwargs)
        self._busy_timeout_ms = int(sqlite_busy_timeout_ms)
        self._local = threading.local()  # SQLite: each thread's own DBAPI connection (_raw_connection)
        self._kept: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        # Per-user in-process locks on PostgreSQL (the row lock serializes across processes too);
        # SQLite has one writer anyway, so all users share its lock.
        self._user_locks: dict[str, threading.Lock] = {}
        self._user_locks_guard = threading.Lock()
        if self._sqlite:
            self._install_sqlite_hooks(sqlite_synchronous.upper(), sqlite_busy_timeout_ms)
        # A commit here neither crosses the network nor waits for the disk (SQLite's WAL written,
        # fsynced only at checkpoints with NORMAL, never with OFF): a short write is CPU only.
        self.commits_without_waiting = self._sqlite and sqlite_synchronous.upper() in ("OFF", "NORMAL")
        # A read here crosses no network and (WAL) waits for no writer: a short one is CPU only,
        # whatever `synchronous` (which is about commits).
        self.reads_without_waiting = self._sqlite
        t.metadata.create_all(self._engine)
        if not self._sqlite:
            with self._engine.connect() as conn:
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar() or "public"
            # One channel per schema: stores in other schemas of the same database stay apart.
            self.pg_channel = f"cpmsync_{schema}"[:63]
        dialect = self._engine.dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._raw_take_modseq = _RawStatement(_TAKE_USER_MODSEQ, dialect)
        self._raw_take_uid_by_id = _RawStatement(_TAKE_UID_BY_ID, dialect)
        self._raw_take_uid_by_name = _RawStatement(_TAKE_UID_BY_NAME, dialect)
        self._raw_first_recent = _RawStatement(_FIRST_RECENT_UID, dialect)
        self._raw_password_hash = _RawStatement(_PASSWORD_HASH, dialect)
        self._raw_user_id = _RawStatement(_USER_ID, dialect)
        self._raw_status_of_one = _RawStatement(_STATUS_OF_ONE, dialect)
        self._raw_select_by_id = _RawStatement(_SELECT_MAILBOX_BY_ID, dialect)
        self._raw_select_by_name = _RawStatement(_SELECT_MAILBOX_BY_NAME, dialect)
        self._raw_select_messages = _RawStatement(_SELECT_MESSAGES, dialect)
        self._raw_insert_blob = _RawStatement(_INSERT_BLOB, dialect, ("data",))
        self._raw_insert_message = _RawStatement(_INSERT_MESSAGE, dialect, _MESSAGE_KEYS)
        self._raw_fetch: dict[tuple[int, bool, bool], _RawStatement] = {}  # see MessageOps.fetch
        self._raw_expunge_candidates: dict[int, _RawStatement] = {}  # by number of UID ranges
        self._raw_lock_user = _RawStatement(_LOCK_USER, dialect)
        self._raw_subscribed_names = _RawStatement(_SUBSCRIBED_NAMES, dialect)
        self._raw_mailbox_name = _RawStatement(_MAILBOX_NAME, dialect)
        self._raw_set_user_modseq = _RawStatement(_SET_USER_MODSEQ, dialect)
        self._raw_set_highestmodseq = _RawStatement(_SET_HIGHESTMODSEQ, dialect)
        self._raw_delete_message = _RawStatement(_DELETE_MESSAGE, dialect)
        self._raw_insert_expunged = _RawStatement(_INSERT_EXPUNGED, dialect, _EXPUNGED_KEYS)
        self._raw_delete_unused_blob = _RawStatement(_DELETE_UNUSED_BLOB, dialect)
        self._raw_set_message_flags = _RawStatement(_SET_MESSAGE_FLAGS, dialect)

    @classmethod
    def from_settings(cls, settings: Any, *, hub: ChangeHub | None = None) -> Self:
        """From a `MsgstoreSettings` (its [store] section)."""
        s = settings.store
        return cls(
            s.resolved_db_url(),
            hub=hub,
            sqlite_synchronous=s.sqlite_synchronous,
            sqlite_busy_timeout_ms=s.sqlite_busy_timeout_ms,
        )

    def _install_sqlite_hooks(self, synchronous: str, busy_timeout_ms: int) -> None:
        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Take over transaction control from pysqlite so BEGIN IMMEDIATE is possible.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for pragma in (
                "journal_mode=WAL",  # readers never block the writer and vice versa
                f"synchronous={synchronous}",
                "foreign_keys=ON",
                f"busy_timeout={int(busy_timeout_ms)}",
                "cache_size=-65536",  # 64 MiB page cache
                "temp_store=MEMORY",
                "mmap_size=268435456",
            ):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # A writer takes the database lock up front: no deadlock when a read lock would upgrade.
            immediate = conn.get_execution_options().get("cpm_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @property
    def is_postgresql(self) -> bool:
        return not self._sqlite

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for helpers that keep their own tables, e.g. connection_limits)."""
        return self._engine

    def pg_conninfo(self) -> str:
        """A libpq URI for this store's database (password included), for the LISTEN connection."""
        return self._url.set(drivername="postgresql").render_as_string(hide_password=False)

    def attach_bus(self, bus: PgChangeBus | None) -> None:
        """Route this store's own events through `bus` (commit order with other instances')."""
        self._bus = bus

    def _announce(self, execute: Any, user: str, events: Sequence[StoreEvent]) -> int | None:
        """Inside the write transaction: pg_notify the events (PostgreSQL only). Returns the token
        under which the attached bus awaits their echo (None: no bus, or it is not listening)."""
        if self._sqlite or not events:
            return None
        bus = self._bus
        token = bus.register(events) if bus is not None else None
        try:
            for payload in encode_notifications(user, self.instance_id, token or 0, events):
                execute("SELECT pg_notify(%s, %s)", (self.pg_channel, payload))
        except BaseException:
            self._abandon(token)
            raise
        return token

    def _abandon(self, token: int | None) -> None:
        if token is not None and self._bus is not None:
            self._bus.abandon(token)

    def _settle(self, token: int) -> None:
        """After the commit: the bus publishes the events when PostgreSQL echoes them (so they reach
        sessions in commit order with other instances' events); wait for that, bounded."""
        if self._bus is not None:
            self._bus.settle(token)

    def close(self) -> None:
        for own in list(self._kept):
            own.close()
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transaction plumbing

    def _user_lock(self, user: str) -> contextlib.AbstractContextManager[Any]:
        if self._sqlite:
            return self._write_lock
        with self._user_locks_guard:
            lock = self._user_locks.get(user)
            if lock is None:
                lock = self._user_locks[user] = threading.Lock()
            return lock

    @contextlib.contextmanager
    def _user_lock_now(self, user: str) -> Iterator[None]:
        """The user's lock if it is free now, else StoreBusy."""
        lock = self._user_lock(user)
        if isinstance(lock, contextlib.nullcontext):
            yield
            return
        if not lock.acquire(blocking=False):  # type: ignore[attr-defined]
            raise StoreBusy("the write lock is taken")
        try:
            yield
        finally:
            lock.release()  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with _busy_is_store_busy(), self._engine.connect() as conn, conn.begin():
            yield conn

    def _raw_read(self, stmt: _RawStatement, values: dict[str, Any], *, wait: bool = True) -> list[Any]:
        """All rows of one SELECT on a bare DBAPI cursor: one statement is its own snapshot, and
        SQLAlchemy's per-execute work (compile cache, context, result rows) is skipped."""
        with self._raw_cursor(wait) as (raw, cur):
            cur.execute(stmt.sql, stmt.params(values))
            rows: list[Any] = list(cur.fetchall())
            if not self._sqlite:
                raw.rollback()  # end the read transaction the driver opened
        return rows

    @contextlib.contextmanager
    def _raw_snapshot(self, *, wait: bool = True) -> Iterator[Any]:
        """A DBAPI cursor for several SELECTs that see one state of the database (SQLite: a
        deferred BEGIN, whose snapshot starts at the first SELECT; PostgreSQL: the transaction the
        driver opens), ended without writing. `_raw_read` for a read of more than one statement."""
        with self._raw_cursor(wait) as (raw, cur):
            try:
                if self._sqlite:
                    cur.execute("BEGIN")
                yield cur
            finally:
                raw.rollback()

    @contextlib.contextmanager
    def _raw_cursor(self, wait: bool) -> Iterator[tuple[Any, Any]]:
        """A DBAPI connection and cursor for reads; the driver's "database is locked" or "busy"
        becomes StoreBusy. `wait=False` (SQLite): without the busy wait, for a read on the event
        loop (a WAL reader waits for no writer, but a checkpoint that resets the log or a
        recovery can hold readers off for a moment)."""
        try:
            with self._raw_connection(wait=wait) as raw:
                cur = raw.cursor()
                try:
                    yield raw, cur
                finally:
                    cur.close()
        except self._dbapi_error as e:
            text = str(e).lower()
            if "locked" in text or "busy" in text:
                raise StoreBusy("the database is busy, try again") from None
            raise

    @contextlib.contextmanager
    def _busy_wait(self, cur: Any, wait: bool) -> Iterator[None]:
        """SQLite's busy wait off on this connection for what runs inside, unless `wait`: a call
        on the event loop must get "busy" at once (StoreBusy) and go to a worker thread."""
        if wait or not self._sqlite:
            yield
            return
        cur.execute("PRAGMA busy_timeout = 0")
        try:
            yield
        finally:
            cur.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    @contextlib.contextmanager
    def _admin(self) -> Iterator[Connection]:
        """A write transaction that does not belong to one user (user add/delete)."""
        with _busy_is_store_busy(), self._write_lock, self._core_txn() as (conn, _execute):
            yield conn

    @contextlib.contextmanager
    def _writer(self, user: str) -> Iterator[tuple[Connection, list[StoreEvent]]]:
        """The user's lock and one write transaction; the events put in the list are published
        after the commit, still under the lock, so subscribers get them in commit (MODSEQ) order."""
        with self._published(user, self._core_txn(), OperationalError) as (conn, events):
            yield conn, events

    @contextlib.contextmanager
    def _raw_writer(self, user: str, *, wait: bool = True) -> Iterator[tuple[Any, list[StoreEvent]]]:
        """`_writer` on a bare DBAPI cursor (for `_RawStatement`s): same lock, same BEGIN IMMEDIATE
        on SQLite, commit before the events are published under the lock. `wait=False` (SQLite):
        StoreBusy at once, nothing done, when the write lock is held here or by another process."""
        with self._published(user, self._raw_txn(wait), self._dbapi_error, wait=wait) as (cur, events):
            yield cur, events

    @contextlib.contextmanager
    def _core_txn(self) -> Iterator[tuple[Connection, Any]]:
        with self._engine.connect() as conn:
            conn.execution_options(cpm_write=True)
            with conn.begin():
                yield conn, conn.exec_driver_sql

    @contextlib.contextmanager
    def _raw_txn(self, wait: bool = True) -> Iterator[tuple[Any, Any]]:
        with self._raw_connection() as raw:
            cur = raw.cursor()
            if self._sqlite:
                with self._busy_wait(cur, wait):
                    cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur, cur.execute
                raw.commit()
            except BaseException:
                raw.rollback()
                raise

    @contextlib.contextmanager
    def _raw_connection(self, *, wait: bool = True) -> Iterator[Any]:
        """A DBAPI connection for `_RawStatement`s. SQLite: this thread's own, kept out of the pool
        (checking one out and back in, with the pool's rollback on return, cost about as much as
        an APPEND's four statements); its user ends every transaction. Otherwise, and when this
        thread's is in use already, one from the pool. `wait=False` (SQLite): its busy wait off
        (see `_busy_wait`); this thread's own keeps the setting until a caller wants the other,
        so the event loop's reads pay no PRAGMA each (one was a sixth of a short read's cost)."""
        own: _ThreadConnection | None = getattr(self._local, "conn", None) if self._sqlite else None
        if self._sqlite and own is None:
            fairy = self._engine.raw_connection()
            fairy.detach()  # closing it now closes the connection; the pool forgets it
            own = self._local.conn = _ThreadConnection(fairy, self._busy_timeout_ms)
            self._kept.add(own)
        if own is None or own.busy or own.raw is None:
            raw = self._engine.raw_connection()
            try:
                if wait or not self._sqlite:
                    yield raw
                else:
                    cur = raw.cursor()
                    with self._busy_wait(cur, wait):
                        yield raw
                    cur.close()
            finally:
                raw.close()  # back to the pool (which rolls back anything left open)
            return
        own.busy = True
        try:
            timeout_ms = self._busy_timeout_ms if wait else 0
            if own.busy_timeout_ms != timeout_ms:
                cur = own.raw.cursor()
                cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
                cur.close()
                own.busy_timeout_ms = timeout_ms
            yield own.raw
        finally:
            own.busy = False

    @contextlib.contextmanager
    def _published(
        self,
        user: str,
        txn: contextlib.AbstractContextManager[tuple[Any, Any]],
        db_error: type[Exception],
        *,
        wait: bool = True,
    ) -> Iterator[tuple[Any, list[StoreEvent]]]:
        """Run `txn` under the user's lock; its events go to the other instances inside the
        transaction (pg_notify) and to this process's hub right after the commit."""
        events: list[StoreEvent] = []
        token: int | None = None
        try:
            with self._user_lock(user) if wait else self._user_lock_now(user):
                with txn as (handle, execute):
                    yield handle, events
                    token = self._announce(execute, user, events)
                # Committed: now, and only now, other sessions may hear about it.
                if events and self._bus is None:
                    self.hub.publish(events)
        except db_error as e:
            self._abandon(token)
            if _busy(e):
                raise StoreBusy("the database is busy, try again") from None
            raise
        except BaseException:
            self._abandon(token)
            raise
        if token is not None:
            self._settle(token)

    @contextlib.contextmanager
    def _write(self, user: str, origin: object | None = None) -> Iterator[_Txn]:
        with self._writer(user) as (conn, events):
            row = conn.execute(_LOCK_USER, {"p_user": user}).first()
            if row is None:
                raise NoSuchUser(f"no such user {user!r}")
            txn = _Txn(
                conn,
                row.id,
                user,
                row.modseq,
                row.uidvalidity_next,
                origin,
                start_modseq=row.modseq,
                start_uidvalidity=row.uidvalidity_next,
                events=events,
            )
            yield txn
            if txn.modseq != txn.start_modseq or txn.uidvalidity_next != txn.start_uidvalidity:
                conn.execute(
                    _SAVE_USER_COUNTERS,
                    {"p_id": txn.user_id, "p_modseq": txn.modseq, "p_uvn": txn.uidvalidity_next},
                )

    # -- lookups inside a transaction

    @staticmethod
    def _user_id(conn: Connection, user: str) -> int:
        uid = conn.execute(_USER_ID, {"p_user": user}).scalar()
        if uid is None:
            raise NoSuchUser(f"no such user {user!r}")
        return int(uid)

    @staticmethod
    def _mailbox(conn: Connection, user_id: int, mailbox: str | int) -> Any:
        if isinstance(mailbox, int):
            row = conn.execute(_MAILBOX_BY_ID, {"p_uid": user_id, "p_mb": mailbox}).first()
            what = f"#{mailbox}"
        else:
            row = conn.execute(_MAILBOX_BY_NAME, {"p_uid": user_id, "p_name": _lookup_name(mailbox)}).first()
            what = repr(mailbox)
        if row is None:
            raise NoSuchMailbox(f"no such mailbox {what}")
        return row

    # -- shared by several concerns

    def _insert_mailbox(self, txn: _Txn, name: str) -> tuple[int, int]:
        modseq = txn.next_modseq()
        mb_id = txn.conn.execute(
            insert(t.mailbox)
            .values(
                user_id=txn.user_id,
                name=name,
                parent=_parent_of(name),
                uidvalidity=txn.next_uidvalidity(),
                uidnext=1,
                highestmodseq=modseq,
                created_modseq=modseq,
                nomodseq=False,
                mailboxid=_new_objectid("F"),
                first_recent_uid=1,
            )
            .returning(t.mailbox.c.id)
        ).scalar_one()
        txn.emit(name, mb_id, EventKind.CREATE, modseq=modseq)
        return int(mb_id), modseq

    def _existing_names(self, conn: Connection, user_id: int, names: Iterable[str]) -> set[str]:
        return _names_in(conn, t.mailbox, user_id, list(names))

    def _gc_blobs(self, conn: Connection, blob_ids: Sequence[int]) -> None:
        for chunk in _chunks(list(blob_ids)):
            conn.execute(
                delete(t.blob).where(
                    t.blob.c.id.in_(chunk),
                    ~exists().where(t.message.c.blob_id == t.blob.c.id),
                )
            )

    # -- status

    def _status_many(self, conn: Connection, user_id: int, ids: Sequence[int]) -> dict[int, MailboxStatus]:
        """STATUS of many mailboxes: one grouped join per id chunk, or one pass over the account."""
        wanted = set(ids)
        out: dict[int, MailboxStatus] = {}
        if len(wanted) > _CHUNK * 4:
            # LIST-STATUS of a whole account: one scan of this user's rows beats hundreds of IN lists.
            for r in conn.execute(_STATUS_OF_USER, {"p_uid": user_id}):
                if r[0] in wanted:
                    out[r[0]] = _status_row(r)
        elif len(wanted) == 1:
            (mb_id,) = wanted
            one = conn.execute(_STATUS_OF_ONE, {"p_mb": mb_id}).first()
            if one is not None and one[2] == user_id:
                out[mb_id] = _status_row(one)
        else:
            for chunk in _chunks(list(wanted)):
                for r in conn.execute(_STATUS_OF_IDS, {"p_ids": list(chunk)}):
                    if r[2] == user_id:
                        out[r[0]] = _status_row(r)
        return out

    def _status(self, conn: Connection, user_id: int, mailbox_id: int) -> MailboxStatus:
        st = self._status_many(conn, user_id, [mailbox_id]).get(mailbox_id)
        if st is None:
            raise NoSuchMailbox(f"no such mailbox #{mailbox_id}")
        return st


def _busy(e: Exception) -> bool:
    """SQLite's "database is locked" / "busy"; SQLAlchemy wraps the driver's error (its text then
    holds the SQL too), so look inside."""
    text = str(e.orig if isinstance(e, OperationalError) else e).lower()
    return "locked" in text or "busy" in text


@contextlib.contextmanager
def _busy_is_store_busy() -> Iterator[None]:
    try:
        yield
    except OperationalError as e:
        if _busy(e):
            raise StoreBusy("the database is busy, try again") from None
        raise
