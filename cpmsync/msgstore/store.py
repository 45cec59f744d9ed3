"""The message store: users, mailboxes, messages and their MODSEQs in SQL.

Synchronous and thread-safe; the asyncio server calls it through `asyncio.to_thread`. Every
mutating call runs in one transaction that first takes the user's lock (SQLite: in-process lock +
BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE on the user row, or for APPEND the same row
lock taken by UPDATE cpm_user ... RETURNING), so the per-user MODSEQ counter is strictly
increasing in commit order even with many concurrent sessions. The call commits before it
returns and only then publishes its events to the `ChangeHub`. The hot statements are built once
at import; APPEND runs them on the DBAPI cursor (`_RawStatement`), the rest through Core.
On PostgreSQL each write transaction with events also sends them with pg_notify before it commits,
so other msgstore instances on the same database learn of them (`pg_listener`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from cpmsync.logs import kv
from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    CannotDeleteInbox,
    InvalidName,
    MailboxExists,
    MailboxHasChildren,
    NoSuchMailbox,
    NoSuchMessage,
    NoSuchSubscription,
    NoSuchUser,
    StoreBusy,
    UserExists,
)
from cpmsync.msgstore.fetch_render import address_search_text
from cpmsync.msgstore.hub import ChangeHub, EventKind, StoreEvent
from cpmsync.msgstore.mailbox_pattern import PatternSet, canonical_name
from cpmsync.msgstore.message_meta import day_number, header_values, parse_meta, split_message
from cpmsync.msgstore.passwords import hash_password, verify_password
from cpmsync.msgstore.pg_payload import encode_notifications
from cpmsync.msgstore.records import (
    AppendResult,
    CopyResult,
    ExpungeResult,
    FlagMode,
    MailboxChanges,
    MailboxListing,
    MailboxStatus,
    MessageRecord,
    MoveResult,
    SearchFilter,
    SearchResult,
    SelectInfo,
    StoreResult,
    UidSet,
)

if TYPE_CHECKING:
    from cpmsync.msgstore.pg_listener import PgChangeBus

__all__ = ["DELIMITER", "BulkMailbox", "BulkMessage", "MessageStore"]

log = logging.getLogger("cpmsync.msgstore")

DELIMITER = "/"
_INBOX = "INBOX"
_MAX_NAME_CHARS = 1000
_CHUNK = 500  # bound on IN (...) lists: SQLite's variable limit, PostgreSQL plan size
_MAX_OR_RANGES = 64  # more UID ranges than this: one BETWEEN window + exact filter in Python
_SEEN = t.FLAG_BITS["\\seen"]
_DELETED = t.FLAG_BITS["\\deleted"]
_FLAG_NAMES = {
    t.FLAG_BITS[k.lower()]: k for k in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}


# ---------------------------------------------------------------- helpers


def _names_in(conn: Connection, table: Table, user_id: int, names: Sequence[str]) -> set[str]:
    """Which of `names` the user has in `table` (mailbox or subscription), in IN-list chunks."""
    found: set[str] = set()
    for chunk in _chunks(names):
        rows = conn.execute(select(table.c.name).where(table.c.user_id == user_id, table.c.name.in_(chunk)))
        found.update(r[0] for r in rows)
    return found


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _parent_of(name: str) -> str:
    i = name.rfind(DELIMITER)
    return "" if i < 0 else name[:i]


def _ancestors(name: str) -> list[str]:
    """ "a/b/c" -> ["a", "a/b"] (outermost first)."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _new_objectid(prefix: str) -> str:
    # RFC 8474 objectid: 1*255 of ALPHA / DIGIT / "_" / "-".
    return prefix + secrets.token_hex(12)


def _split_flags(flags: Iterable[str]) -> tuple[int, frozenset[str]]:
    """System flags to bits (case-insensitive), other atoms to keywords; \\Recent and unknown
    backslash flags are dropped (a client cannot create system flags, RFC 3501 2.3.2)."""
    bits = 0
    keywords: set[str] = set()
    for f in flags:
        if not f:
            continue
        low = f.lower()
        if low in t.FLAG_BITS:
            bits |= t.FLAG_BITS[low]
        elif not f.startswith("\\"):
            keywords.add(f)
    return bits, frozenset(keywords)


def _kw_text(keywords: Iterable[str]) -> str:
    kws = sorted(keywords)
    return " " + " ".join(kws) + " " if kws else ""


def _kw_parse(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _flags_of(bits: int, keywords_text: str) -> frozenset[str]:
    return frozenset([name for bit, name in _FLAG_NAMES.items() if bits & bit]) | _kw_parse(keywords_text)


def _to_epoch(internaldate: datetime | None) -> tuple[int, int, int]:
    """(epoch seconds, zone minutes east, calendar day in that zone)."""
    if internaldate is None:
        internaldate = datetime.now(UTC)
    if internaldate.tzinfo is None:
        internaldate = internaldate.replace(tzinfo=UTC)
    offset = internaldate.utcoffset() or timedelta(0)
    tz_min = int(offset.total_seconds() // 60)
    epoch = int(internaldate.timestamp())
    return epoch, tz_min, (epoch + tz_min * 60) // 86400


def _from_epoch(epoch: int, tz_min: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone(timedelta(minutes=tz_min)))


def _check_name(name: str) -> str:
    """Canonical form of a client-supplied mailbox name, or InvalidName saying why."""
    if name.endswith(DELIMITER):
        name = name[: -len(DELIMITER)]
    if not name:
        raise InvalidName("empty mailbox name")
    if len(name) > _MAX_NAME_CHARS:
        raise InvalidName(f"mailbox name longer than {_MAX_NAME_CHARS} characters")
    if name.startswith(DELIMITER) or DELIMITER * 2 in name:
        raise InvalidName("empty hierarchy level in mailbox name")
    if any(c in name for c in "*%"):
        raise InvalidName("wildcards are not allowed in mailbox names")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidName("control characters are not allowed in mailbox names")
    return canonical_name(name, DELIMITER)


def _uid_filter(col: Any, uids: UidSet | None) -> tuple[ColumnElement[bool], UidSet | None]:
    """SQL predicate for `uids`, plus the set to re-check in Python when the SQL is only a window."""
    if uids is None or uids.is_all:
        return true(), None
    if not uids.ranges:
        return false(), None
    if len(uids.ranges) <= _MAX_OR_RANGES:
        return or_(*[col == lo if lo == hi else col.between(lo, hi) for lo, hi in uids.ranges]), None
    return col.between(uids.ranges[0][0], uids.ranges[-1][1]), uids


def _is_busy(e: OperationalError) -> bool:
    text = str(e.orig).lower()
    return "locked" in text or "busy" in text


# ---------------------------------------------------------------- transactions


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


@dataclass(frozen=True, slots=True)
class BulkMessage:
    """One message for `bulk_load` (seeding)."""

    data: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkMailbox:
    """A mailbox and its messages for `bulk_load`; an existing mailbox is appended to."""

    name: str
    messages: Sequence[BulkMessage] = ()


_MSG_COLS = (
    t.message.c.id,
    t.message.c.uid,
    t.message.c.modseq,
    t.message.c.sysflags,
    t.message.c.keywords,
    t.message.c.internaldate,
    t.message.c.tz_min,
    t.message.c.size,
    t.message.c.emailid,
    t.message.c.threadid,
    t.message.c.blob_id,
)


def _record(row: Any, data: bytes | None = None) -> MessageRecord:
    return MessageRecord(
        uid=row.uid,
        modseq=row.modseq,
        flags=_flags_of(row.sysflags, row.keywords),
        internaldate=_from_epoch(row.internaldate, row.tz_min),
        size=row.size,
        emailid=row.emailid,
        threadid=row.threadid,
        data=data,
    )


# ---------------------------------------------------------------- pre-built statements

# Built once with bindparam(): building a Core statement per call (coercions, cache-key generation)
# cost more than executing it; a module-level statement memoizes its cache key, so each execute is a
# compiled-cache hit. Bind names carry a "p_" prefix because INSERT/UPDATE reserve column names.
_LOCK_USER = (
    select(t.user.c.id, t.user.c.modseq, t.user.c.uidvalidity_next)
    .where(t.user.c.name == bindparam("p_user"))
    .with_for_update()
)
_SAVE_USER_COUNTERS = (
    update(t.user)
    .where(t.user.c.id == bindparam("p_id"))
    .values(modseq=bindparam("p_modseq"), uidvalidity_next=bindparam("p_uvn"))
)
_USER_ID = select(t.user.c.id).where(t.user.c.name == bindparam("p_user"))
_MAILBOX_BY_ID = select(t.mailbox).where(
    t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.id == bindparam("p_mb")
)
_MAILBOX_BY_NAME = select(t.mailbox).where(
    t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.name == bindparam("p_name")
)
_INSERT_BLOB = insert(t.blob).returning(t.blob.c.id)
_INSERT_MESSAGE = insert(t.message)
# APPEND in four statements: each UPDATE ... RETURNING both changes a counter and reads it, and the
# user row UPDATE takes the same row lock as the generic path's SELECT ... FOR UPDATE (PostgreSQL).
_TAKE_USER_MODSEQ = (
    update(t.user)
    .where(t.user.c.name == bindparam("p_user"))
    .values(modseq=t.user.c.modseq + 1)
    .returning(t.user.c.id, t.user.c.modseq)
)
_TAKE_UID_SET = {
    "uidnext": t.mailbox.c.uidnext + 1,
    "highestmodseq": bindparam("p_modseq"),
}
_TAKE_UID_RETURNING = (t.mailbox.c.id, t.mailbox.c.name, t.mailbox.c.uidnext, t.mailbox.c.uidvalidity)
_TAKE_UID_BY_ID = (
    update(t.mailbox)
    .where(t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.id == bindparam("p_mb"))
    .values(_TAKE_UID_SET)
    .returning(*_TAKE_UID_RETURNING)
)
_TAKE_UID_BY_NAME = (
    update(t.mailbox)
    .where(t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.name == bindparam("p_name"))
    .values(_TAKE_UID_SET)
    .returning(*_TAKE_UID_RETURNING)
)


# STATUS: each mailbox row with its message aggregates, as plain tuples (see _status_tuple).
# Filtered by primary key only (the user is checked in Python): with a (user_id, ...) index in
# reach, SQLite may scan the whole account instead of looking the ids up.
def _status_select(where: ColumnElement[bool]) -> Any:
    mb, m = t.mailbox, t.message
    return (
        select(
            mb.c.id,
            mb.c.user_id,
            mb.c.name,
            mb.c.uidnext,
            mb.c.uidvalidity,
            mb.c.highestmodseq,
            mb.c.nomodseq,
            mb.c.mailboxid,
            func.count(m.c.id),
            func.sum(case((m.c.sysflags.op("&")(_SEEN) == 0, 1), else_=0)),
            func.sum(m.c.size),
            func.sum(case((m.c.uid >= mb.c.first_recent_uid, 1), else_=0)),
        )
        .select_from(mb.outerjoin(m, m.c.mailbox_id == mb.c.id))
        .where(where)
        .group_by(mb.c.id)
    )


_STATUS_OF_ONE = _status_select(t.mailbox.c.id == bindparam("p_mb"))
_STATUS_OF_IDS = _status_select(t.mailbox.c.id.in_(bindparam("p_ids", expanding=True)))
_STATUS_OF_USER = _status_select(t.mailbox.c.user_id == bindparam("p_uid"))


def _status_tuple(r: Any) -> MailboxStatus:
    mb_id, _user_id, name, uidnext, uidvalidity, hms, nomodseq, mailboxid, n, unseen, size, recent = r
    return MailboxStatus(
        mb_id,
        name,
        int(n or 0),
        int(recent or 0),
        uidnext,
        uidvalidity,
        int(unseen or 0),
        0 if nomodseq else hms,
        int(size or 0),
        mailboxid,
        bool(nomodseq),
    )


_MESSAGE_KEYS = (
    "mailbox_id",
    "uid",
    "modseq",
    "sysflags",
    "keywords",
    "internaldate",
    "tz_min",
    "internal_day",
    "sent_day",
    "size",
    "blob_id",
    "emailid",
    "threadid",
)


class _RawStatement:
    """A Core statement compiled once for the store's dialect and run on the DBAPI cursor.

    On APPEND, SQLAlchemy's per-execute work (context, result setup, events) cost three times
    SQLite's own work for the four statements; the SQL text still comes from the Core statement,
    so it stays portable (qmark for SQLite, pyformat for psycopg)."""

    __slots__ = ("_defaults", "_positions", "sql")

    def __init__(self, stmt: Any, dialect: Any, column_keys: Sequence[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql: str = compiled.string
        # Literals inside the statement (the 1 of "modseq + 1") are bind parameters with values;
        # `type(...) is int` skips the REQUIRED marker, an int subclass.
        self._defaults = {k: v for k, v in compiled.params.items() if type(v) is int}
        self._positions = tuple(compiled.positiontup) if compiled.positional else None

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self._defaults, **values} if self._defaults else values
        if self._positions is None:
            return merged
        return tuple([merged[k] for k in self._positions])

    def run(self, cur: Any, values: dict[str, Any]) -> Any:
        """Execute; the first row of a RETURNING statement (None when no row matched)."""
        cur.execute(self.sql, self.params(values))
        return cur.fetchone() if cur.description is not None else None


# ---------------------------------------------------------------- the store


class MessageStore:
    """Users, mailboxes and messages in any SQLAlchemy database (SQLite file by default)."""

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
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        # Per-user in-process locks on PostgreSQL (the row lock serializes across processes too);
        # SQLite has one writer anyway, so all users share its lock.
        self._user_locks: dict[str, threading.Lock] = {}
        self._user_locks_guard = threading.Lock()
        if self._sqlite:
            self._install_sqlite_hooks(sqlite_synchronous.upper(), sqlite_busy_timeout_ms)
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
        self._raw_insert_blob = _RawStatement(_INSERT_BLOB, dialect, ("data",))
        self._raw_insert_message = _RawStatement(_INSERT_MESSAGE, dialect, _MESSAGE_KEYS)

    @classmethod
    def from_settings(cls, settings: Any, *, hub: ChangeHub | None = None) -> MessageStore:
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
        self._engine.dispose()

    def __enter__(self) -> MessageStore:
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
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as e:
            if _is_busy(e):
                raise StoreBusy("the database is busy, try again") from None
            raise

    @contextlib.contextmanager
    def _admin(self) -> Iterator[Connection]:
        """A write transaction that does not belong to one user (user add/delete)."""
        try:
            with self._write_lock, self._engine.connect() as conn:
                conn.execution_options(cpm_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as e:
            if _is_busy(e):
                raise StoreBusy("the database is busy, try again") from None
            raise

    @contextlib.contextmanager
    def _writer(self, user: str) -> Iterator[tuple[Connection, list[StoreEvent]]]:
        """The user's lock and one write transaction; the events put in the list are published
        after the commit, still under the lock, so subscribers get them in commit (MODSEQ) order."""
        events: list[StoreEvent] = []
        token: int | None = None
        try:
            with self._user_lock(user), self._engine.connect() as conn:
                conn.execution_options(cpm_write=True)
                with conn.begin():
                    yield conn, events
                    token = self._announce(conn.exec_driver_sql, user, events)
                # Committed: now, and only now, other sessions may hear about it.
                if events and self._bus is None:
                    self.hub.publish(events)
        except OperationalError as e:
            self._abandon(token)
            if _is_busy(e):
                raise StoreBusy("the database is busy, try again") from None
            raise
        except BaseException:
            self._abandon(token)
            raise
        if token is not None:
            self._settle(token)

    @contextlib.contextmanager
    def _raw_writer(self, user: str) -> Iterator[tuple[Any, list[StoreEvent]]]:
        """`_writer` on a bare DBAPI cursor (for `_RawStatement`s): same lock, same BEGIN IMMEDIATE
        on SQLite, commit before the events are published under the lock."""
        events: list[StoreEvent] = []
        token: int | None = None
        try:
            with self._user_lock(user):
                raw = self._engine.raw_connection()
                try:
                    cur = raw.cursor()
                    if self._sqlite:
                        cur.execute("BEGIN IMMEDIATE")
                    try:
                        yield cur, events
                        token = self._announce(cur.execute, user, events)
                    except BaseException:
                        raw.rollback()
                        raise
                    raw.commit()
                finally:
                    raw.close()  # back to the pool (which rolls back anything left open)
                # Committed: now, and only now, other sessions may hear about it.
                if events and self._bus is None:
                    self.hub.publish(events)
        except self._dbapi_error as e:
            self._abandon(token)
            text = str(e).lower()
            if "locked" in text or "busy" in text:
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
            name = canonical_name(mailbox.rstrip(DELIMITER) or mailbox, DELIMITER)
            row = conn.execute(_MAILBOX_BY_NAME, {"p_uid": user_id, "p_name": name}).first()
            what = repr(mailbox)
        if row is None:
            raise NoSuchMailbox(f"no such mailbox {what}")
        return row

    # ================================================================ users

    def add_user(self, name: str, password: str) -> None:
        """Create a user with INBOX; the password is stored argon2id-hashed."""
        if not name or len(name) > 255 or any(c.isspace() or ord(c) < 0x20 for c in name):
            raise InvalidName("user names are 1..255 characters without spaces or control characters")
        pw_hash = hash_password(password)
        try:
            with self._admin() as conn:
                # UIDVALIDITY starts at the clock so a re-created user does not repeat old values.
                conn.execute(
                    insert(t.user).values(
                        name=name,
                        password_hash=pw_hash,
                        modseq=0,
                        uidvalidity_next=max(1, int(time.time()) % 2**31),
                    )
                )
        except IntegrityError:
            raise UserExists(f"user {name!r} already exists") from None
        with self._write(name) as txn:
            self._insert_mailbox(txn, _INBOX)
        log.info("user added", extra=kv(user=name))

    def delete_user(self, name: str) -> None:
        """Remove a user and everything they own."""
        with self._admin() as conn:
            user_id = self._user_id(conn, name)
            mb_ids = [
                r[0] for r in conn.execute(select(t.mailbox.c.id).where(t.mailbox.c.user_id == user_id))
            ]
            for chunk in _chunks(mb_ids):
                blob_ids = [
                    r[0]
                    for r in conn.execute(
                        select(t.message.c.blob_id).where(t.message.c.mailbox_id.in_(chunk)).distinct()
                    )
                ]
                conn.execute(delete(t.message).where(t.message.c.mailbox_id.in_(chunk)))
                conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id.in_(chunk)))
                self._gc_blobs(conn, blob_ids)
            conn.execute(delete(t.mailbox).where(t.mailbox.c.user_id == user_id))
            conn.execute(delete(t.subscription).where(t.subscription.c.user_id == user_id))
            conn.execute(delete(t.mailbox_tombstone).where(t.mailbox_tombstone.c.user_id == user_id))
            conn.execute(delete(t.mailbox_rename).where(t.mailbox_rename.c.user_id == user_id))
            conn.execute(delete(t.user).where(t.user.c.id == user_id))
        log.info("user deleted", extra=kv(user=name))

    def list_users(self) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute(select(t.user.c.name).order_by(t.user.c.name))]

    def verify_password(self, name: str, password: str) -> bool:
        """Unknown users cost one hash too, so timing does not reveal which names exist."""
        try:
            name.encode("utf-8")
            password.encode("utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes from the wire (surrogate escapes) name no user and match no stored
            # password; the dummy hash still takes the same time. SQL and argon2 would raise instead.
            return verify_password(None, "")
        with self._read() as conn:
            stored = conn.execute(select(t.user.c.password_hash).where(t.user.c.name == name)).scalar()
        return verify_password(stored, password)

    def user_highest_modseq(self, user: str) -> int:
        with self._read() as conn:
            v = conn.execute(select(t.user.c.modseq).where(t.user.c.name == user)).scalar()
        if v is None:
            raise NoSuchUser(f"no such user {user!r}")
        return int(v)

    # ================================================================ mailboxes

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

    # -- listing

    def _subscribed_names(self, conn: Connection, user_id: int) -> set[str]:
        return {
            r[0]
            for r in conn.execute(select(t.subscription.c.name).where(t.subscription.c.user_id == user_id))
        }

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
                        status=_status_of(r) if with_status and r is not None else None,
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

    # -- status

    def _status_many(self, conn: Connection, user_id: int, ids: Sequence[int]) -> dict[int, MailboxStatus]:
        """STATUS of many mailboxes: one grouped join per id chunk, or one pass over the account."""
        wanted = set(ids)
        out: dict[int, MailboxStatus] = {}
        if len(wanted) > _CHUNK * 4:
            # LIST-STATUS of a whole account: one scan of this user's rows beats hundreds of IN lists.
            for r in conn.execute(_STATUS_OF_USER, {"p_uid": user_id}):
                if r[0] in wanted:
                    out[r[0]] = _status_tuple(r)
        elif len(wanted) == 1:
            (mb_id,) = wanted
            one = conn.execute(_STATUS_OF_ONE, {"p_mb": mb_id}).first()
            if one is not None and one[1] == user_id:
                out[mb_id] = _status_tuple(one)
        else:
            for chunk in _chunks(list(wanted)):
                for r in conn.execute(_STATUS_OF_IDS, {"p_ids": list(chunk)}):
                    if r[1] == user_id:
                        out[r[0]] = _status_tuple(r)
        return out

    def _status(self, conn: Connection, user_id: int, mailbox_id: int) -> MailboxStatus:
        st = self._status_many(conn, user_id, [mailbox_id]).get(mailbox_id)
        if st is None:
            raise NoSuchMailbox(f"no such mailbox #{mailbox_id}")
        return st

    def status(self, user: str, mailbox: str | int) -> MailboxStatus:
        """STATUS: MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE MAILBOXID."""
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            mb = self._mailbox(conn, user_id, mailbox)
            return self._status(conn, user_id, mb.id)

    def select(self, user: str, mailbox: str | int, *, readonly: bool) -> SelectInfo:
        """SELECT (claims \\Recent, RFC 3501 2.3.2) or EXAMINE (readonly, claims nothing)."""
        with self._read() as conn:
            info = self._select(conn, self._user_id(conn, user), mailbox, claim_recent=False)
        if readonly or not info.recent_uids:
            return info  # nothing to claim: no need to queue for the write lock
        with self._write(user) as txn:
            return self._select(txn.conn, txn.user_id, mailbox, claim_recent=True)

    def claim_recent(self, user: str, mailbox: str | int, uids: Sequence[int]) -> list[int]:
        """Messages that arrived while a read-write session had the mailbox selected are \\Recent
        for that session (RFC 3501 2.3.2); the first session to claim a UID gets it, no other."""
        if not uids:
            return []
        with self._write(user) as txn:
            mb = self._mailbox(txn.conn, txn.user_id, mailbox)
            claimed = [u for u in uids if u >= mb.first_recent_uid]
            if claimed:
                txn.conn.execute(
                    update(t.mailbox).where(t.mailbox.c.id == mb.id).values(first_recent_uid=max(claimed) + 1)
                )
            return claimed

    def _select(
        self, conn: Connection, user_id: int, mailbox: str | int, *, claim_recent: bool
    ) -> SelectInfo:
        mb = self._mailbox(conn, user_id, mailbox)
        status = self._status(conn, user_id, mb.id)
        uids = [
            r[0]
            for r in conn.execute(
                select(t.message.c.uid).where(t.message.c.mailbox_id == mb.id).order_by(t.message.c.uid)
            )
        ]
        kw: set[str] = set()
        for r in conn.execute(
            select(t.message.c.keywords)
            .where(t.message.c.mailbox_id == mb.id, t.message.c.keywords != "")
            .distinct()
        ):
            kw |= _kw_parse(r[0])
        recent = [u for u in uids if u >= mb.first_recent_uid]
        if claim_recent and mb.first_recent_uid < mb.uidnext:
            conn.execute(update(t.mailbox).where(t.mailbox.c.id == mb.id).values(first_recent_uid=mb.uidnext))
        return SelectInfo(status=status, uids=uids, keywords=sorted(kw), recent_uids=recent)

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
    ) -> AppendResult:
        """APPEND: one MODSEQ, the next UID; returns APPENDUID data (RFC 4315)."""
        bits, keywords = _split_flags(flags)
        epoch, tz_min, day = _to_epoch(internaldate)
        meta = parse_meta(data)
        where: dict[str, Any]
        if isinstance(mailbox, int):
            take_uid, where = self._raw_take_uid_by_id, {"p_mb": mailbox}
            what = f"#{mailbox}"
        else:
            name = canonical_name(mailbox.rstrip(DELIMITER) or mailbox, DELIMITER)
            take_uid, where = self._raw_take_uid_by_name, {"p_name": name}
            what = repr(mailbox)
        with self._raw_writer(user) as (cur, events):
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
        with self._read() as conn:
            mb = self._mailbox(conn, self._user_id(conn, user), mailbox)
            return self._fetch_rows(conn, mb.id, uids, changedsince, with_data)

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
        bits, keywords = _split_flags(flags)
        with self._write(user, origin) as txn:
            conn = txn.conn
            mb = self._mailbox(conn, txn.user_id, mailbox)
            rows = self._fetch_rows(conn, mb.id, uids, None, False)
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

    def _gc_blobs(self, conn: Connection, blob_ids: Sequence[int]) -> None:
        for chunk in _chunks(list(blob_ids)):
            conn.execute(
                delete(t.blob).where(
                    t.blob.c.id.in_(chunk),
                    ~exists().where(t.message.c.blob_id == t.blob.c.id),
                )
            )

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
                msgs = conn.execute(
                    select(t.message.c.uid, t.message.c.modseq).where(
                        t.message.c.mailbox_id == mb.id, t.message.c.modseq.between(since + 1, upto)
                    )
                ).all()
                if msgs:
                    uids = tuple(sorted(r.uid for r in msgs))
                    top = max(r.modseq for r in msgs)
                    events.append(StoreEvent(user, mb.name, mb.id, EventKind.APPEND, uids, top))
                    events.append(StoreEvent(user, mb.name, mb.id, EventKind.FLAGS, uids, top))
                gone = conn.execute(
                    select(t.expunged.c.uid, t.expunged.c.modseq).where(
                        t.expunged.c.mailbox_id == mb.id, t.expunged.c.modseq.between(since + 1, upto)
                    )
                ).all()
                if gone:
                    uids = tuple(sorted(r.uid for r in gone))
                    events.append(
                        StoreEvent(user, mb.name, mb.id, EventKind.EXPUNGE, uids, max(r.modseq for r in gone))
                    )
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

    # ================================================================ bulk (seeding)

    def bulk_load(self, user: str, mailboxes: Sequence[BulkMailbox]) -> int:
        """Create mailboxes (and missing parents) and add their messages in ONE transaction, with
        multi-row inserts. For seeding and benchmarks: MODSEQ/UID rules as for single calls, but no
        events are published. Returns the number of messages added."""
        with self._write(user) as txn:
            conn = txn.conn
            names = [_check_name(b.name) for b in mailboxes]
            wanted_set: dict[str, None] = {}  # ordered: parents before children
            for n in names:
                for a in [*_ancestors(n), n]:
                    wanted_set.setdefault(a, None)
            wanted = list(wanted_set)
            existing_rows = {}
            for chunk in _chunks(wanted):
                for r in conn.execute(
                    select(t.mailbox).where(t.mailbox.c.user_id == txn.user_id, t.mailbox.c.name.in_(chunk))
                ):
                    existing_rows[r.name] = r
            msgs_by_name: dict[str, list[BulkMessage]] = {}
            for n, b in zip(names, mailboxes, strict=True):
                msgs_by_name.setdefault(n, []).extend(b.messages)
            # Mailboxes: each creation takes a MODSEQ, then its messages take the following ones.
            new_rows: list[dict[str, Any]] = []
            plan: list[tuple[str, int, int, list[BulkMessage]]] = []  # name, first uid, uidvalidity, messages
            for n in wanted:
                msgs = msgs_by_name.get(n, [])
                if n in existing_rows:
                    r = existing_rows[n]
                    plan.append((n, r.uidnext, r.uidvalidity, msgs))
                    continue
                created = txn.next_modseq()
                uidvalidity = txn.next_uidvalidity()
                new_rows.append(
                    {
                        "user_id": txn.user_id,
                        "name": n,
                        "parent": _parent_of(n),
                        "uidvalidity": uidvalidity,
                        "uidnext": 1 + len(msgs),
                        "highestmodseq": created + len(msgs),
                        "created_modseq": created,
                        "nomodseq": False,
                        "mailboxid": _new_objectid("F"),
                        "first_recent_uid": 1,
                    }
                )
                plan.append((n, 1, uidvalidity, msgs))
                txn.modseq += len(msgs)  # reserved for this mailbox's messages, in order
            ids: dict[str, int] = {n: r.id for n, r in existing_rows.items()}
            if new_rows:
                res = conn.execute(
                    insert(t.mailbox).returning(
                        t.mailbox.c.id, t.mailbox.c.name, sort_by_parameter_order=True
                    ),
                    new_rows,
                )
                ids.update({r.name: r.id for r in res})
            # Messages of existing mailboxes take MODSEQs after all new ones.
            blob_rows: list[dict[str, Any]] = []
            msg_rows: list[dict[str, Any]] = []
            existing_updates: list[dict[str, Any]] = []
            new_names = {r["name"] for r in new_rows}
            next_created = {r["name"]: r["created_modseq"] for r in new_rows}
            for n, first_uid, _uv, msgs in plan:
                if not msgs:
                    continue
                if n in new_names:
                    base = next_created[n]
                    modseqs = [base + 1 + i for i in range(len(msgs))]
                else:
                    modseqs = [txn.next_modseq() for _ in msgs]
                    existing_updates.append(
                        {"b_id": ids[n], "b_uidnext": first_uid + len(msgs), "b_hms": modseqs[-1]}
                    )
                for i, bm in enumerate(msgs):
                    bits, kws = _split_flags(bm.flags)
                    epoch, tz_min, day = _to_epoch(bm.internaldate)
                    meta = parse_meta(bm.data)
                    blob_rows.append({"data": bm.data})
                    msg_rows.append(
                        {
                            "mailbox_id": ids[n],
                            "uid": first_uid + i,
                            "modseq": modseqs[i],
                            "sysflags": bits,
                            "keywords": _kw_text(kws),
                            "internaldate": epoch,
                            "tz_min": tz_min,
                            "internal_day": day,
                            "sent_day": meta.sent_day,
                            "size": len(bm.data),
                            "emailid": _new_objectid("M"),
                            "threadid": meta.threadid,
                        }
                    )
            if blob_rows:
                res = conn.execute(
                    insert(t.blob).returning(t.blob.c.id, sort_by_parameter_order=True), blob_rows
                )
                for row, blob_id in zip(msg_rows, [r[0] for r in res], strict=True):
                    row["blob_id"] = blob_id
                conn.execute(insert(t.message), msg_rows)
            if existing_updates:
                conn.execute(
                    update(t.mailbox)
                    .where(t.mailbox.c.id == bindparam("b_id"))
                    .values(uidnext=bindparam("b_uidnext"), highestmodseq=bindparam("b_hms")),
                    existing_updates,
                )
            return len(msg_rows)

    def analyze(self) -> None:
        """Refresh planner statistics after bulk loads (seeding calls it after its first batch and at
        the end): without them PostgreSQL keeps planning for empty tables and scans sequentially."""
        with self._engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("ANALYZE" if self._sqlite else "ANALYZE cpm_user, mailbox, message, blob")


def _status_of(r: Any) -> MailboxStatus:
    """MailboxStatus from a `_listing_query(..., with_status=True)` row (unpacked by position:
    named access on SQLAlchemy rows costs more than the rest of a 10,000-mailbox LIST-STATUS)."""
    mb_id, name, _parent, mailboxid, hms, nomodseq, uidnext, uidvalidity, n, unseen, size, recent = r
    return MailboxStatus(
        mb_id,
        name,
        int(n or 0),
        int(recent or 0),
        uidnext,
        uidvalidity,
        int(unseen or 0),
        0 if nomodseq else hms,
        int(size or 0),
        mailboxid,
        bool(nomodseq),
    )


def _with_status(m: MailboxListing, st: MailboxStatus | None) -> MailboxListing:
    # Positional construction: dataclasses.replace costs a third of a 10,000-mailbox LIST-STATUS.
    return MailboxListing(
        m.name,
        m.id,
        m.mailboxid,
        m.has_children,
        m.has_subscribed_children,
        m.subscribed,
        m.nonexistent,
        m.old_name,
        m.highestmodseq,
        m.nomodseq,
        st,
    )


def _day_conds(
    col: Any, before: date | None, on: date | None, since: date | None
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if before is not None:
        out.append(col < day_number(before))
    if on is not None:
        out.append(col == day_number(on))
    if since is not None:
        out.append(col >= day_number(since))
    return out


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})


def _text_match(data: bytes, flt: SearchFilter) -> bool:
    header, body = split_message(data)
    for name, needle in flt.headers:
        values = header_values(data, name)
        if not values:
            return False
        if name.lower() in _ADDRESS_HEADERS:
            values = [address_search_text(v) for v in values]
        if needle and not any(needle.casefold() in v.casefold() for v in values):
            return False
    if flt.body:
        b = body.decode("utf-8", "replace").casefold()
        if not all(s.casefold() in b for s in flt.body):
            return False
    if flt.text:
        whole = (header + body).decode("utf-8", "replace").casefold()
        if not all(s.casefold() in whole for s in flt.text):
            return False
    return True
