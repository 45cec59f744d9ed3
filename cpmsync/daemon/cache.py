"""The daemon's cache API: what the sync engine reads and the one-transaction folder sync.

Every folder sync commits the folder's rows, its MQTT events (outbox) and the watermark step
together. The account watermark only moves past a folder once that folder is committed, so a
crash or a cut connection in the middle of a sync can delay a change but never skip it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Row, and_, bindparam, case, delete, func, insert, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cpmsync.daemon.schedule import HeartbeatState
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.topics import Topics
from cpmsync.logs import kv
from cpmsync.models.events import EventKind, FolderEvent, FolderSummary, LastMessage, event_id
from cpmsync.models.fields import from_attributes
from cpmsync.models.schema import open_engine
from cpmsync.models.tables import (
    Account,
    ActionRow,
    Folder,
    FolderGeneration,
    Message,
    NetworkHeartbeat,
    OutboxRow,
    OutboxSeq,
    PendingFolder,
    SyncRun,
    TraceEntry,
)
from cpmsync.sql_bulk import Bulk
from cpmsync.sql_chunks import in_chunks

__all__ = [
    "AccountState",
    "Cache",
    "FolderState",
    "FolderSync",
    "LocalChange",
    "MessageData",
    "OutboxItem",
    "SyncRunState",
    "open_cache",
]

log = logging.getLogger("cpmsync.daemon.cache")

SEEN = "\\Seen"
Direction = Literal["in", "out"]


# A folder sync writes through these prebuilt Core statements on the session's connection: a
# statement built per call (or the ORM's unit of work) cost ten times the SQLite work it asked for,
# most of a push sync's time from the server's answer to the commit and a third of a first sync's CPU.
_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]  # SQLModel: the mapped Table
_MESSAGE = Message.__table__  # type: ignore[attr-defined]
_FOLDER = Folder.__table__  # type: ignore[attr-defined]
_PENDING = PendingFolder.__table__  # type: ignore[attr-defined]
_SEQ = OutboxSeq.__table__  # type: ignore[attr-defined]
_GENERATION = FolderGeneration.__table__  # type: ignore[attr-defined]
_ACCOUNT = Account.__table__  # type: ignore[attr-defined]

_FOLDER_VALUES = (
    "delimiter",
    "attributes",
    "mailbox_id",
    "uidvalidity",
    "uidnext",
    "highestmodseq",
    "messages",
    "unseen",
    "last_synced_modseq",
)
"""The columns of a folder row a sync sets (all but its keys)."""


def _in_list(column: Any) -> Any:
    """`column IN (:items)`, the list given at execution (at most 500: SQLite's parameter limit)."""
    return column.in_(bindparam("items", expanding=True))


_FOLDERS_NAMED = sa_select(_FOLDER).where(
    _FOLDER.c.account_id == bindparam("account"), _in_list(_FOLDER.c.name)
)
_PENDING_NAMED = sa_select(_PENDING.c.name).where(
    _PENDING.c.account_id == bindparam("account"), _in_list(_PENDING.c.name)
)
_PENDING_DROP = delete(_PENDING).where(
    _PENDING.c.account_id == bindparam("account"), _in_list(_PENDING.c.name)
)
_SEQS_NAMED = sa_select(_SEQ.c.folder, _SEQ.c.last_seq).where(_in_list(_SEQ.c.folder))
_SEQ_ONE = sa_select(_SEQ.c.last_seq).where(_SEQ.c.folder == bindparam("name"))
_SEQ_NEW = sqlite_insert(_SEQ)
_SEQ_SAVE = Bulk(
    _SEQ_NEW.on_conflict_do_update(
        index_elements=[_SEQ.c.folder], set_={"last_seq": _SEQ_NEW.excluded.last_seq}
    )
)
_GENERATIONS_NAMED = sa_select(_GENERATION.c.name, _GENERATION.c.removed).where(
    _GENERATION.c.account_id == bindparam("account"), _in_list(_GENERATION.c.name)
)
_GENERATION_ONE = sa_select(_GENERATION.c.removed).where(
    _GENERATION.c.account_id == bindparam("account"), _GENERATION.c.name == bindparam("name")
)
_FOLDER_INSERT = Bulk(insert(_FOLDER))
_FOLDER_IDS = sa_select(_FOLDER.c.name, _FOLDER.c.id).where(
    _FOLDER.c.account_id == bindparam("account"), _in_list(_FOLDER.c.name)
)
_FOLDER_UPDATE = Bulk(
    update(_FOLDER)
    .where(_FOLDER.c.id == bindparam("fid"))
    .values({c: bindparam(f"v_{c}") for c in _FOLDER_VALUES})
)
_RETAINED_DROP = delete(_OUTBOX).where(_in_list(_OUTBOX.c.topic), _OUTBOX.c.retain.is_(True))
_IN_FOLDER = _MESSAGE.c.folder_id == bindparam("fid")
_UIDS_IN = _in_list(_MESSAGE.c.uid)
_MESSAGE_FLAGS = sa_select(_MESSAGE.c.flags).where(_IN_FOLDER, _MESSAGE.c.uid == bindparam("uid"))
_MESSAGE_UIDS = sa_select(_MESSAGE.c.uid).where(_IN_FOLDER)
_MESSAGES_DROP = delete(_MESSAGE).where(_IN_FOLDER)
_HELD_UIDS = sa_select(_MESSAGE.c.uid).where(_IN_FOLDER, _UIDS_IN)
_HELD_DROP = delete(_MESSAGE).where(_IN_FOLDER, _UIDS_IN)
_COUNTS = sa_select(func.count(), func.count(case((_MESSAGE.c.seen.is_(False), 1)))).where(_IN_FOLDER)
_NEWEST = (
    sa_select(_MESSAGE.c.uid, _MESSAGE.c.from_addr, _MESSAGE.c.subject, _MESSAGE.c.date, _MESSAGE.c.preview)
    .where(_IN_FOLDER)
    .order_by(_MESSAGE.c.uid.desc())
    .limit(1)
)
_ACCOUNT_MARKS = sa_select(_ACCOUNT.c.watermark, _ACCOUNT.c.sync_target).where(
    _ACCOUNT.c.id == bindparam("account")
)
_ACCOUNT_WATERMARK = (
    update(_ACCOUNT).where(_ACCOUNT.c.id == bindparam("account")).values(watermark=bindparam("watermark"))
)
# watermark = min(target, min over pending folders of what is already synced of them). One
# aggregate query, not one per pending folder: a first sync has every folder pending and commits
# once per batch, so a per-folder loop made it quadratic (2,000 folders never finished). A pending
# folder never synced counts as 0.
_PENDING_FLOOR = (
    sa_select(func.min(func.coalesce(_FOLDER.c.last_synced_modseq, 0)))
    .select_from(_PENDING)
    .outerjoin(
        _FOLDER, and_(_FOLDER.c.account_id == _PENDING.c.account_id, _FOLDER.c.name == _PENDING.c.name)
    )
    .where(_PENDING.c.account_id == bindparam("account"))
)


@functools.cache
def _message_update(columns: tuple[str, ...]) -> Bulk:
    """UPDATE of these columns of one message row (executemany: `fid`, `muid`, `v_<column>`)."""
    return Bulk(
        update(_MESSAGE)
        .where(_IN_FOLDER, _MESSAGE.c.uid == bindparam("muid"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )


_MESSAGE_INSERT = Bulk(insert(_MESSAGE))
_OUTBOX_INSERT = Bulk(insert(_OUTBOX))

# The reads and writes on the path from a server's news to its event (a push sync, the publisher).
_FOLDERS_ALL = sa_select(_FOLDER).where(_FOLDER.c.account_id == bindparam("account"))
_FOLDER_NAMED = _FOLDERS_ALL.where(_FOLDER.c.name == bindparam("name"))
_FOLDER_FLAGS = (
    sa_select(_MESSAGE.c.uid, _MESSAGE.c.modseq, _MESSAGE.c.flags)
    .join(_FOLDER, _FOLDER.c.id == _MESSAGE.c.folder_id)
    .where(_FOLDER.c.account_id == bindparam("account"), _FOLDER.c.name == bindparam("name"))
)
# What the publisher sends of a row (not `created`: a datetime parsed per row for nothing).
_OUTBOX_OLDEST = (
    sa_select(
        _OUTBOX.c.id,
        _OUTBOX.c.topic,
        _OUTBOX.c.payload,
        _OUTBOX.c.qos,
        _OUTBOX.c.retain,
        _OUTBOX.c.folder,
        _OUTBOX.c.seq,
    )
    .where(_OUTBOX.c.id > bindparam("after"))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
)
_OUTBOX_DROP = delete(_OUTBOX).where(_in_list(_OUTBOX.c.id))
_RUN_INSERT = insert(SyncRun.__table__)  # type: ignore[attr-defined]


def _now() -> datetime:
    return datetime.now(UTC)


def _txn_now(s: Session) -> datetime:
    """One clock reading per transaction, the `created` of every row and event it writes: they
    are recorded together, and one shared value is read once and formatted once (`sql_bulk`)
    instead of once per message of a first sync."""
    now: datetime | None = s.info.get("now")
    if now is None:
        now = s.info["now"] = _now()
    return now


def _flags_text(flags: Iterable[str]) -> str:
    """The flags column's text; a frozen set (every fetched message's) is joined once per distinct
    set, since a first sync's messages share a few."""
    if isinstance(flags, frozenset):
        return _frozen_flags_text(flags)
    return " ".join(sorted(set(flags)))


@functools.lru_cache(maxsize=256)
def _frozen_flags_text(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags))


def _flags_set(text_: str) -> frozenset[str]:
    return frozenset(text_.split()) if text_ else frozenset()


@dataclass(frozen=True)
class AccountState:
    id: str
    server: str | None
    capabilities: tuple[str, ...]
    watermark: int
    sync_target: int
    strategy: str | None


@dataclass(frozen=True)
class FolderState:
    name: str
    delimiter: str | None
    attributes: tuple[str, ...]
    mailbox_id: str | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    messages: int
    unseen: int
    last_synced_modseq: int


@dataclass(frozen=True)
class MessageData:
    """A message as the sync engine fetched it (envelope fields decoded to text)."""

    uid: int
    modseq: int | None = None
    flags: frozenset[str] | Sequence[str] = frozenset()
    internaldate: datetime | None = None
    size: int | None = None
    from_: str | None = None
    to: str | None = None
    subject: str | None = None
    date: datetime | None = None
    message_id: str | None = None
    preview: str | None = None
    body: bytes | None = None


@dataclass(frozen=True)
class SyncRunState:
    id: int
    started: datetime
    ended: datetime | None
    strategy: str
    bytes_in: int
    bytes_out: int
    wire_bytes_in: int
    wire_bytes_out: int
    folders_touched: int
    error: str | None


@dataclass(frozen=True)
class OutboxItem:
    """An outbox row as the publisher sends it."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    folder: str
    seq: int


def _folder_state(f: Folder | Row[Any]) -> FolderState:
    return from_attributes(FolderState, f, attributes=tuple(f.attributes.split()) if f.attributes else ())


@dataclass
class _PendingEvent:
    kind: EventKind
    folder: str
    uidvalidity: int | None
    uids: list[int]
    modseq: int | None
    old_folder: str | None = None
    msg: MessageData | None = None
    flags: list[str] | None = None
    topics: list[str] = field(default_factory=list)


class Cache:
    """The SQLite cache of one account. Create with `Cache.open`."""

    def __init__(
        self,
        engine: Any,
        account_id: str,
        *,
        topic_prefix: str = "cpm",
        event_qos: int = 1,
        trace_max_entries: int = 100_000,
        rebuilt: bool = False,
        migrated_from: int | None = None,
    ) -> None:
        self._engine = engine
        self.account_id = account_id
        self.topics = Topics(topic_prefix, account_id)
        self.event_qos = event_qos
        self.trace_max_entries = trace_max_entries
        self.rebuilt = rebuilt
        self.migrated_from = migrated_from
        self._listener: Callable[[], None] | None = None
        self._lock = threading.RLock()  # one writer at a time from this process
        # Acks that arrive while a folder sync holds the write transaction are applied after it,
        # so the publisher never waits on (or deadlocks with) the sync's SQLite write lock.
        self._txn_open = 0
        self._deferred_acks: set[int] = set()
        self.events_committed = 0
        """Events this process committed (every kind): how the session loop tells a connection
        that delivered news before it failed from one that got nowhere (its reconnect backoff)."""
        with Session(engine) as s:
            if s.get(Account, account_id) is None:
                s.add(Account(id=account_id))
                try:
                    s.commit()
                except IntegrityError:
                    # Another process (the daemon, `daemon stats`) opened it at the same moment.
                    s.rollback()
        self._id_key = self._event_id_key(self.account().server)

    def _event_id_key(self, server: str | None) -> str:
        # Event ids include the server account (an "imap://user@host:port" identity) so the
        # events of another IMAP account behind the same account id never reuse an old id
        # (apps drop a repeated id as a duplicate). Old "host:port" rows keep the plain id.
        return f"{self.account_id}\0{server}" if server and "://" in server else self.account_id

    @classmethod
    def open(
        cls,
        path: Path | str,
        account_id: str,
        *,
        topic_prefix: str = "cpm",
        event_qos: int = 1,
        trace_max_entries: int = 100_000,
        upgrade: bool = True,
    ) -> Cache:
        """Open the cache file, migrating or rebuilding it (see `rebuilt`).

        `upgrade=False` for readers: another schema raises CacheSchemaError, the file is untouched.
        """
        r = open_engine(path, upgrade=upgrade)
        return cls(
            r.engine,
            account_id,
            topic_prefix=topic_prefix,
            event_qos=event_qos,
            trace_max_entries=trace_max_entries,
            rebuilt=r.rebuilt,
            migrated_from=r.migrated_from,
        )

    def close(self) -> None:
        self._engine.dispose()

    def set_commit_listener(self, fn: Callable[[], None] | None) -> None:
        """`fn()` runs after each commit that added outbox rows (the publisher's wake-up)."""
        self._listener = fn

    def _notify(self) -> None:
        if self._listener is not None:
            self._listener()

    # ---------------------------------------------------------------- account

    def account(self) -> AccountState:
        with Session(self._engine) as s:
            a = s.get(Account, self.account_id)
            assert a is not None
            return AccountState(
                id=a.id,
                server=a.server,
                capabilities=tuple(a.capabilities.split()),
                watermark=a.watermark,
                sync_target=a.sync_target,
                strategy=a.strategy,
            )

    @property
    def watermark(self) -> int:
        return self.account().watermark

    def update_account(
        self,
        *,
        server: str | None = None,
        capabilities: Iterable[str] | None = None,
        strategy: str | None = None,
    ) -> None:
        with self._lock, Session(self._engine) as s:
            a = s.get(Account, self.account_id)
            assert a is not None
            if server is not None:
                a.server = server
                self._id_key = self._event_id_key(server)
            if capabilities is not None:
                a.capabilities = " ".join(capabilities)
            if strategy is not None:
                a.strategy = strategy
            s.add(a)
            s.commit()

    def forget_account(self, server: str | None = None) -> int:
        """The cache holds ANOTHER account's mailboxes (imap host/username changed): drop them all.

        One transaction: every folder goes with a folder_removed event and an empty retained
        summary (apps must not keep showing the old account), the watermark returns to 0 and the
        account row forgets capabilities/strategy and records `server`, so a full first sync
        follows. Returns how many folders were dropped.
        """
        with self._lock, Session(self._engine) as s:
            rows = list(s.exec(select(Folder).where(Folder.account_id == self.account_id)))
            for f in rows:
                ev = _PendingEvent("folder_removed", f.name, f.uidvalidity, [], f.highestmodseq)
                s.exec(delete(Message).where(col(Message.folder_id) == f.id))
                s.delete(f)
                self._write_event(s, ev, self.topics.events(f.name))
                self._write_summary(s, f.name, None)
            s.exec(delete(PendingFolder).where(col(PendingFolder.account_id) == self.account_id))
            a = s.get(Account, self.account_id)
            assert a is not None
            a.server, a.capabilities, a.strategy = server, "", None
            a.watermark = a.sync_target = 0
            s.add(a)
            self._commit(s)
        self._id_key = self._event_id_key(server)
        self.rebuilt = True
        self._notify()
        return len(rows)

    def begin_discovery(self, target_modseq: int, changed: Iterable[str], *, complete: bool = True) -> None:
        """Record what a discovery found: the folders to sync and the modseq it saw up to.

        `complete`: the discovery named every folder changed since the watermark (LIST
        CHANGEDSINCE, or LIST-STATUS compared with the cache), so it replaces the pending set;
        a pending folder it did not name has nothing above the watermark. Use False for a
        partial hint (one NOTIFY'd folder): pending folders are then kept.
        """
        with self._lock, Session(self._engine) as s:
            a = s.get(Account, self.account_id)
            assert a is not None
            a.sync_target = max(a.sync_target, target_modseq)
            s.add(a)
            names = dict.fromkeys(changed)
            have = set(s.exec(select(PendingFolder.name).where(PendingFolder.account_id == self.account_id)))
            if complete:
                for stale in have - set(names):
                    s.exec(
                        delete(PendingFolder).where(
                            col(PendingFolder.account_id) == self.account_id, col(PendingFolder.name) == stale
                        )
                    )
            for name in names:
                if name not in have:
                    s.add(PendingFolder(account_id=self.account_id, name=name))
            s.flush()
            self._advance(s)
            s.commit()

    def pending_folders(self) -> list[str]:
        with Session(self._engine) as s:
            return sorted(
                s.exec(select(PendingFolder.name).where(PendingFolder.account_id == self.account_id))
            )

    def advance_watermark(self) -> int:
        """Move the watermark as far as committed folders allow; returns it."""
        with self._lock, Session(self._engine) as s:
            w = self._advance(s)
            s.commit()
            return w

    def _advance(self, s: Session) -> int:
        # watermark = min(target, min over pending folders of what is already synced of them):
        # every change above it in a pending folder is still to be fetched (_PENDING_FLOOR).
        s.flush()  # pending folders the caller added count
        conn = s.connection()
        key = {"account": self.account_id}
        watermark, target = conn.execute(_ACCOUNT_MARKS, key).one()
        floor = conn.execute(_PENDING_FLOOR, key).scalar()
        new: int = target
        if floor is not None:
            new = min(new, max(watermark, floor))
        new = max(watermark, new)
        if new != watermark:
            conn.execute(_ACCOUNT_WATERMARK, {**key, "watermark": new})
        return new

    # ---------------------------------------------------------------- reads

    def _folder_row(self, s: Session, name: str) -> Folder | None:
        return s.exec(select(Folder).where(Folder.account_id == self.account_id, Folder.name == name)).first()

    def folders(self, names: Iterable[str] | None = None) -> dict[str, FolderState]:
        """Every cached folder, or those of `names` that are cached (a push sync of one folder
        need not read ten thousand)."""
        key = {"account": self.account_id}
        with self._engine.connect() as conn:
            if names is None:
                return {f.name: _folder_state(f) for f in conn.execute(_FOLDERS_ALL, key)}
            out: dict[str, FolderState] = {}
            for part in in_chunks(sorted(set(names))):
                out.update(
                    {f.name: _folder_state(f) for f in conn.execute(_FOLDERS_NAMED, {**key, "items": part})}
                )
            return out

    def folder(self, name: str) -> FolderState | None:
        with self._engine.connect() as conn:
            f = conn.execute(_FOLDER_NAMED, {"account": self.account_id, "name": name}).first()
            return _folder_state(f) if f is not None else None

    def known_uids(self, name: str) -> list[int]:
        with Session(self._engine) as s:
            f = self._folder_row(s, name)
            if f is None:
                return []
            return list(
                s.exec(select(Message.uid).where(Message.folder_id == f.id).order_by(col(Message.uid)))
            )

    def message_flags(self, name: str) -> dict[int, tuple[int, frozenset[str]]]:
        with self._engine.connect() as conn:
            rows = conn.execute(_FOLDER_FLAGS, {"account": self.account_id, "name": name})
            return {uid: (modseq or 0, _flags_set(flags)) for uid, modseq, flags in rows}

    def messages(self, name: str) -> list[MessageData]:
        """All cached messages of a folder, by UID (apps and tests)."""
        with Session(self._engine) as s:
            f = self._folder_row(s, name)
            if f is None:
                return []
            rows = s.exec(select(Message).where(Message.folder_id == f.id).order_by(col(Message.uid)))
            return [from_attributes(MessageData, m, flags=_flags_set(m.flags)) for m in rows]

    # ---------------------------------------------------------------- writes

    @contextmanager
    def folder_sync(self, name: str) -> Iterator[FolderSync]:
        """One transaction: cache rows + outbox events + watermark step, or nothing at all."""
        with self.folders_sync([name]) as folder:
            yield folder(name)

    @contextmanager
    def folders_sync(self, names: Sequence[str]) -> Iterator[Callable[[str], FolderSync]]:
        """`folder_sync` for these folders in ONE transaction (a pipelined batch): `fs = folder(name)`
        for each; their rows, events, pending entries and one watermark step, or nothing at all.
        What is the same for every folder (their rows, new messages, superseded summaries, pending
        entries) is read or written in one statement per 500 folders, not one per folder."""
        syncs: dict[str, FolderSync] = {}
        with self._transaction() as s:
            batch = self._batch(s, names)
            conn = s.connection()  # once: asking the session for it per folder cost as much as a query

            def folder(name: str) -> FolderSync:
                if name in syncs or name not in batch.folders:
                    raise ValueError(f"folder {name!r} not expected in this transaction")
                syncs[name] = FolderSync(self, s, conn, name, batch)
                return syncs[name]

            yield folder
            for fs in syncs.values():
                fs._finish()
            self._finish_batch(s, batch)
        if syncs:
            self._notify()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """The body's writes committed together, or rolled back on any exception; the acks that
        waited for the transaction to end are applied after it."""
        with self._lock, Session(self._engine) as s:
            self._txn_open += 1
            try:
                yield s
                self._commit(s)
            except BaseException:
                s.rollback()
                raise
            finally:
                self._txn_open -= 1
        self._apply_deferred_acks()

    def _batch(self, s: Session, names: Sequence[str]) -> _Batch:
        conn = s.connection()
        wanted = list(dict.fromkeys(names))
        folders: dict[str, _FolderRow | None] = dict.fromkeys(wanted)
        pending: set[str] = set()
        seqs: dict[str, _Seq] = s.info.setdefault("outbox_seq", {})
        gens: dict[str, int] = s.info.setdefault("folder_generation", {})
        for part in in_chunks(wanted):
            p = {"account": self.account_id, "items": part}
            for row in conn.execute(_FOLDERS_NAMED, p):
                folders[row.name] = _FolderRow(row.id, _folder_state(row))
            pending.update(conn.execute(_PENDING_NAMED, p).scalars())
            # Every folder writes at least its summary: its outbox counter, read here for all at once.
            for name, last in conn.execute(_SEQS_NAMED, p):
                seqs.setdefault(name, _Seq(last, last))
            # Every event id includes its folder's generation (`_generation`): read for all at once,
            # not one primary-key get per folder (a fifth of a first sync's CPU in the daemon).
            gens.update({name: removed for name, removed in conn.execute(_GENERATIONS_NAMED, p)})
        for name in wanted:
            seqs.setdefault(name, _Seq(0, None))
            gens.setdefault(name, 0)
        return _Batch(folders, pending)

    def _finish_batch(self, s: Session, b: _Batch) -> None:
        """The folder rows, new messages, superseded summaries and pending entries of the whole
        batch, one executemany (or one statement per 500 names) each; then the watermark step."""
        conn = s.connection()
        acct = {"account": self.account_id}
        if b.added:
            _FOLDER_INSERT.execute(
                conn, [{"account_id": self.account_id, "name": f.state.name, **f.columns()} for f in b.added]
            )
            ids: dict[str, int] = {}
            for part in in_chunks([f.state.name for f in b.added]):
                ids.update({name: fid for name, fid in conn.execute(_FOLDER_IDS, {**acct, "items": part})})
            for f in b.added:
                f.id = ids[f.state.name]
        if b.changed:
            _FOLDER_UPDATE.execute(
                conn, [{"fid": f.id, **{f"v_{c}": v for c, v in f.columns().items()}} for f in b.changed]
            )
        rows: list[dict[str, Any]] = []
        for f, new in b.messages:
            for r in new:
                r["folder_id"] = f.id
            rows += new
        if rows:
            _MESSAGE_INSERT.execute(conn, rows)
        for part in in_chunks(sorted(b.summaries)):
            conn.execute(_RETAINED_DROP, {"items": part})
        for part in in_chunks(b.synced):
            conn.execute(_PENDING_DROP, {**acct, "items": part})
        if b.synced:
            # The watermark follows the pending folders only (`_advance`): a batch that synced
            # none of them (a push sync) leaves it where the last change to them put it.
            self._advance(s)

    def delete_folder(self, name: str) -> bool:
        """The folder is gone on the server: drop it, publish folder_removed and clear its summary."""
        with self._lock, Session(self._engine) as s:
            f = self._folder_row(s, name)
            s.exec(
                delete(PendingFolder).where(
                    col(PendingFolder.account_id) == self.account_id, col(PendingFolder.name) == name
                )
            )
            if f is None:
                self._advance(s)
                s.commit()
                return False
            ev = _PendingEvent("folder_removed", name, f.uidvalidity, [], f.highestmodseq)
            s.exec(delete(Message).where(col(Message.folder_id) == f.id))
            s.delete(f)
            self._write_event(s, ev, self.topics.events(name))
            self._bump_generation(s, name)
            self._write_summary(s, name, None)
            self._advance(s)
            self._commit(s)
        self._notify()
        log.info("folder removed", extra=kv(folder=name))
        return True

    def rename_folder(self, old: str, new: str) -> bool:
        """The server renamed a folder: move it (messages keep their rows), tell both topics."""
        with self._lock, Session(self._engine) as s:
            f = self._folder_row(s, old)
            if f is None or old == new:
                return False
            stale = self._folder_row(s, new)
            if stale is not None:
                s.exec(delete(Message).where(col(Message.folder_id) == stale.id))
                s.delete(stale)
                s.flush()
                self._bump_generation(s, new)
            f.name = new
            s.add(f)
            # Queued app actions follow the folder (daemon/actions.py).
            s.exec(
                update(ActionRow)
                .where(col(ActionRow.account_id) == self.account_id, col(ActionRow.folder) == old)
                .where(col(ActionRow.state) == "queued")
                .values(folder=new)
            )
            pend = s.get(PendingFolder, (self.account_id, old))
            if pend is not None:
                s.delete(pend)
                if s.get(PendingFolder, (self.account_id, new)) is None:
                    s.add(PendingFolder(account_id=self.account_id, name=new))
            s.flush()
            ev = _PendingEvent("folder_renamed", new, f.uidvalidity, [], f.highestmodseq, old_folder=old)
            payload = self._event_payload(ev, _txn_now(s))
            self._write_raw(s, self.topics.events(old), payload.to_json(), old, payload.id)
            self._write_raw(s, self.topics.events(new), payload.to_json(), new, payload.id)
            self._write_summary(s, old, None)
            self._write_summary(s, new, f)
            self._advance(s)
            self._commit(s)
        self._notify()
        log.info("folder renamed", extra=kv(folder=new, old_folder=old))
        return True

    # ---------------------------------------------------------------- app actions (actions.py)

    def read_session(self) -> Session:
        """A session for reads (`with cache.read_session() as s:`); writes go through local_change."""
        return Session(self._engine)

    @contextmanager
    def local_change(self) -> Iterator[LocalChange]:
        """One transaction for a change the device made itself (an app's action): cache rows,
        their events and summaries, and whatever rows the caller adds, or nothing at all. Unlike
        `folder_sync` it claims nothing about the server: pending folders and the watermark stay."""
        with self._transaction() as s:
            lc = LocalChange(self, s)
            yield lc
            lc._finish()
        self._notify()

    # ---------------------------------------------------------------- outbox

    def _next_seq(self, s: Session, folder: str) -> int:
        # Counters are remembered per session and written once, at `_commit`.
        counters: dict[str, _Seq] = s.info.setdefault("outbox_seq", {})
        c = counters.get(folder)
        if c is None:
            last = s.connection().execute(_SEQ_ONE, {"name": folder}).scalar()
            c = counters[folder] = _Seq(last or 0, last)
        c.last += 1
        return c.last

    def _write_raw(
        self,
        s: Session,
        topic: str,
        payload: str,
        folder: str,
        eid: str | None,
        *,
        retain: bool = False,
    ) -> None:
        # Buffered and inserted in one executemany at commit (`_commit`), in this order.
        pending: list[dict[str, Any]] = s.info.setdefault("outbox_rows", [])
        if retain:
            s.info.setdefault("outbox_retained", set()).add(topic)
        pending.append(
            {
                "topic": topic,
                "payload": payload,
                "qos": self.event_qos,
                "retain": retain,
                "created": _txn_now(s),
                "folder": folder,
                "seq": self._next_seq(s, folder),
                "event_id": eid,
            }
        )

    def _commit(self, s: Session) -> None:
        """Insert the buffered outbox rows and their folders' counters, then commit: all or none."""
        rows = s.info.pop("outbox_rows", None)
        s.info.pop("outbox_retained", None)
        s.info.pop("now", None)  # a session that writes on after this commit reads the clock again
        counters: dict[str, _Seq] = s.info.pop("outbox_seq", {})
        moved = [{"folder": f, "last_seq": c.last} for f, c in counters.items() if c.last != c.saved]
        s.flush()
        if rows:
            _OUTBOX_INSERT.execute(s.connection(), rows)
        if moved:
            _SEQ_SAVE.execute(s.connection(), moved)
        s.commit()
        if rows:
            self.events_committed += sum(1 for r in rows if r["event_id"] is not None)

    def _generation(self, s: Session, name: str) -> int:
        """How often `name` was dropped from the cache (see FolderGeneration), per transaction."""
        known: dict[str, int] = s.info.setdefault("folder_generation", {})
        if name not in known:
            removed = s.connection().execute(_GENERATION_ONE, {"account": self.account_id, "name": name})
            known[name] = removed.scalar() or 0
        return known[name]

    def _bump_generation(self, s: Session, name: str) -> None:
        row = s.get(FolderGeneration, (self.account_id, name))
        if row is None:
            row = FolderGeneration(account_id=self.account_id, name=name)
        row.removed += 1
        s.add(row)
        s.info.setdefault("folder_generation", {})[name] = row.removed

    def _event_payload(self, ev: _PendingEvent, created: datetime, generation: int = 0) -> FolderEvent:
        m = ev.msg
        # A rename is identified by both names, so renaming back later is a new event.
        key = ev.folder if ev.old_folder is None else f"{ev.old_folder}\0{ev.folder}"
        return FolderEvent.of(
            {
                "id": event_id(
                    self._id_key,
                    key,
                    ev.uidvalidity,
                    ev.uids,
                    ev.modseq,
                    ev.kind,
                    # Without a MODSEQ, the new flags are what makes this flag change distinct.
                    " ".join(sorted(ev.flags)) if ev.modseq is None and ev.flags is not None else None,
                    generation,
                ),
                "kind": ev.kind,
                "account": self.account_id,
                "folder": ev.folder,
                "old_folder": ev.old_folder,
                "uidvalidity": ev.uidvalidity,
                "uids": sorted(ev.uids),
                "modseq": ev.modseq,
                "from_": m.from_ if m else None,
                "to": m.to if m else None,
                "subject": m.subject if m else None,
                "date": m.date if m else None,
                "preview": m.preview if m else None,
                "flags": ev.flags,
                "size": m.size if m else None,
                "created": created,
            }
        )

    def _write_event(self, s: Session, ev: _PendingEvent, topic: str) -> None:
        payload = self._event_payload(ev, _txn_now(s), self._generation(s, ev.folder))
        self._write_raw(s, topic, payload.to_json(), ev.folder, payload.id)

    def _write_summary(
        self,
        s: Session,
        name: str,
        f: Folder | FolderState | None,
        *,
        last: LastMessage | bool | None = False,
        purge: bool = True,
    ) -> None:
        """The folder's retained summary; `last` when the caller knows it (False: read it), and
        `purge=False` when the caller deletes the unsent older summaries itself (`_purge_summaries`)."""
        topic = self.topics.summary(name)
        # A newer retained summary supersedes an unsent older one: the broker keeps only the last.
        if purge:
            s.exec(delete(OutboxRow).where(col(OutboxRow.topic) == topic, col(OutboxRow.retain).is_(True)))
        buffered: list[dict[str, Any]] = s.info.get("outbox_rows", [])
        # Which retained topics are buffered, kept beside the rows: scanning every buffered row per
        # folder made a batch of 100 folders quadratic.
        retained: set[str] = s.info.setdefault("outbox_retained", set())
        if topic in retained:
            buffered[:] = [r for r in buffered if not (r["retain"] and r["topic"] == topic)]
        if f is None:
            self._write_raw(s, topic, "", name, None, retain=True)
            return
        if last is False:
            assert isinstance(f, Folder)  # a folder sync knows its last message: only ORM callers ask
            last_msg = s.exec(
                select(Message).where(Message.folder_id == f.id).order_by(col(Message.uid).desc())
            ).first()
            last = (
                LastMessage(
                    uid=last_msg.uid,
                    from_=last_msg.from_,
                    subject=last_msg.subject,
                    date=last_msg.date,
                    preview=last_msg.preview,
                )
                if last_msg is not None
                else None
            )
        assert last is None or isinstance(last, LastMessage)
        summary = FolderSummary(
            account=self.account_id,
            name=name,
            uidvalidity=f.uidvalidity,
            messages=f.messages,
            unseen=f.unseen,
            highestmodseq=f.highestmodseq,
            last=last,
            updated=_now(),
        )
        self._write_raw(s, topic, summary.to_json(), name, None, retain=True)

    def outbox_batch(self, limit: int = 100, *, after: int = 0) -> list[OutboxItem]:
        """The oldest unacknowledged rows with an id above `after`, in commit order (which keeps
        per-folder order).

        Ids only grow (AUTOINCREMENT) and SQLite has one writer at a time, so a row committed
        after this read has a larger id than every row it returned: a reader that goes on `after`
        the last id it took misses none."""
        deferred = self._deferred_acks
        with self._engine.connect() as conn:
            q = conn.execute(_OUTBOX_OLDEST, {"after": after, "limit": limit + len(deferred)})
            items = [
                OutboxItem(id, topic, payload.encode(), qos, retain, folder, seq)
                for id, topic, payload, qos, retain, folder, seq in q
                if id not in deferred
            ]
        return items[:limit]

    def outbox_ack(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these rows: they may go."""
        self._deferred_acks.update(ids)
        if self._txn_open:
            return
        self._apply_deferred_acks()

    def _apply_deferred_acks(self) -> None:
        if not self._deferred_acks:
            return
        with self._lock, self._engine.begin() as conn:
            ids = sorted(self._deferred_acks)
            for part in in_chunks(ids):
                conn.execute(_OUTBOX_DROP, {"items": part})
        self._deferred_acks.difference_update(ids)

    def outbox_count(self) -> int:
        """Rows not yet acknowledged by the broker."""
        q = select(func.count()).select_from(OutboxRow)
        if self._deferred_acks:
            q = q.where(col(OutboxRow.id).not_in(list(self._deferred_acks)))
        with Session(self._engine) as s:
            return int(s.exec(q).one())

    # ---------------------------------------------------------------- runs and trace

    def start_run(self, strategy: str) -> int:
        with self._lock, Session(self._engine) as s:
            run = SyncRun(account_id=self.account_id, started=_now(), strategy=strategy)
            s.add(run)
            s.commit()
            assert run.id is not None
            return run.id

    def heartbeat_state(self, network_id: str) -> HeartbeatState | None:
        """What the heartbeat ladder learned on this network, if it has been here before."""
        with Session(self._engine) as s:
            row = s.get(NetworkHeartbeat, (self.account_id, network_id))
            if row is None:
                return None
            return HeartbeatState(row.good_s, row.bad_s, row.probe_s, row.since_s)

    def save_heartbeat(self, network_id: str, state: HeartbeatState) -> None:
        with self._lock, Session(self._engine) as s:
            row = s.get(NetworkHeartbeat, (self.account_id, network_id))
            if row is None:
                row = NetworkHeartbeat(account_id=self.account_id, network_id=network_id, updated=_now())
            row.good_s, row.bad_s, row.probe_s, row.since_s = (
                state.good_s,
                state.bad_s,
                state.probe_s,
                state.since_s,
            )
            row.updated = _now()
            s.add(row)
            s.commit()

    def finish_run(
        self,
        run_id: int,
        *,
        bytes_in: int = 0,
        bytes_out: int = 0,
        wire_bytes_in: int = 0,
        wire_bytes_out: int = 0,
        folders_touched: int = 0,
        error: str | None = None,
    ) -> None:
        with self._lock, Session(self._engine) as s:
            run = s.get(SyncRun, run_id)
            if run is None:
                raise KeyError(run_id)
            run.ended = _now()
            run.bytes_in, run.bytes_out = bytes_in, bytes_out
            run.wire_bytes_in, run.wire_bytes_out = wire_bytes_in, wire_bytes_out
            run.folders_touched, run.error = folders_touched, error
            s.add(run)
            s.commit()

    def record_run(
        self,
        strategy: str,
        started: datetime,
        *,
        bytes_in: int = 0,
        bytes_out: int = 0,
        wire_bytes_in: int = 0,
        wire_bytes_out: int = 0,
        folders_touched: int = 0,
        error: str | None = None,
    ) -> None:
        """A short run (a push sync) in one write once it is over: `start_run` + `finish_run` cost
        a commit before its first command, on the path from a change to its event."""
        with self._lock, self._engine.begin() as conn:
            conn.execute(
                _RUN_INSERT,
                {
                    "account_id": self.account_id,
                    "started": started,
                    "ended": _now(),
                    "strategy": strategy,
                    "bytes_in": bytes_in,
                    "bytes_out": bytes_out,
                    "wire_bytes_in": wire_bytes_in,
                    "wire_bytes_out": wire_bytes_out,
                    "folders_touched": folders_touched,
                    "error": error,
                },
            )

    def runs(self, limit: int = 50) -> list[SyncRunState]:
        """The latest runs, newest first."""
        with Session(self._engine) as s:
            rows = s.exec(
                select(SyncRun)
                .where(SyncRun.account_id == self.account_id)
                .order_by(col(SyncRun.id).desc())
                .limit(limit)
            )
            return [from_attributes(SyncRunState, r, id=r.id or 0) for r in rows]

    def add_trace(self, conn_id: str, entries: Iterable[tuple[float, Direction | str, int]]) -> None:
        """Append (unix time, direction, bytes) entries; the oldest go beyond trace_max_entries."""
        rows = [{"conn_id": conn_id, "t": t, "direction": d, "nbytes": n} for t, d, n in entries]
        if not rows:
            return
        with self._lock, Session(self._engine) as s:
            s.execute(TraceEntry.__table__.insert(), rows)  # type: ignore[attr-defined]
            s.execute(
                text("DELETE FROM trace WHERE id <= (SELECT MAX(id) FROM trace) - :cap"),
                {"cap": self.trace_max_entries},
            )
            s.commit()

    def trace(self, conn_id: str | None = None) -> list[tuple[str, float, str, int]]:
        with Session(self._engine) as s:
            q = select(TraceEntry).order_by(col(TraceEntry.id))
            if conn_id is not None:
                q = q.where(TraceEntry.conn_id == conn_id)
            return [(r.conn_id, r.t, r.direction, r.nbytes) for r in s.exec(q)]


@dataclass
class _FolderRow:
    """A folder sync's folder: its row id (None until inserted with its batch's) and its state as
    the sync changes it; written back with the batch (`Cache._finish_batch`), one executemany for
    all, instead of an ORM object per folder."""

    id: int | None
    state: FolderState

    def columns(self) -> dict[str, Any]:
        st = self.state
        return {c: " ".join(st.attributes) if c == "attributes" else getattr(st, c) for c in _FOLDER_VALUES}

    def update(self, **changes: Any) -> None:
        if changes:
            self.state = dataclasses.replace(self.state, **changes)


@dataclass
class _Seq:
    """A folder's outbox counter in one transaction: `last` handed out, `saved` in the table (None:
    no row yet); `Cache._commit` writes the counters that moved."""

    last: int
    saved: int | None


@dataclass
class _Batch:
    """What the folders of one `folders_sync` transaction leave to a single statement each."""

    folders: dict[str, _FolderRow | None]  # rows read in one query
    pending: set[str]  # pending folders among them
    added: list[_FolderRow] = field(default_factory=list)  # new folders, inserted together
    changed: list[_FolderRow] = field(default_factory=list)  # cached folders, updated together
    messages: list[tuple[_FolderRow, list[dict[str, Any]]]] = field(default_factory=list)  # no id yet
    summaries: set[str] = field(default_factory=set)  # retained topics whose unsent rows go
    synced: list[str] = field(default_factory=list)  # pending entries to drop


class FolderSync:
    """Changes to one folder inside one transaction; made by `Cache.folder_sync`.

    Rows are written with plain SQL on the transaction's connection: new messages in one
    executemany, changed ones in one per set of columns, at the end (`_finish`)."""

    def __init__(self, cache: Cache, session: Session, conn: Connection, name: str, batch: _Batch) -> None:
        self._cache = cache
        self._s = session
        self._conn = conn  # the session's, in its transaction
        self.name = name
        self._batch = batch
        self._folder = batch.folders.get(name)
        self.existed = self._folder is not None
        self.uidvalidity_reset = False
        self._events: list[_PendingEvent] = []
        # Flags of the rows in the table this sync read or changed, so a lookup needs no query;
        # a folder that is new (or just lost its messages) has nothing to look up.
        self._flags: dict[int, str] = {}
        self._updates: dict[int, dict[str, Any]] = {}  # uid -> columns to set on its row
        self._new: dict[int, dict[str, Any]] = {}  # not in the table yet: one executemany at the end
        self._may_exist = self.existed
        self._messages: int | None = None
        self._unseen: int | None = None

    def _ensure(self) -> _FolderRow:
        if self._folder is None:
            # Inserted with the batch's new folders; its messages get its id then.
            self._folder = _FolderRow(None, FolderState(self.name, None, (), None, None, None, None, 0, 0, 0))
            self._events.append(_PendingEvent("folder_added", self.name, None, [], None))
        return self._folder

    def set_status(
        self,
        *,
        uidvalidity: int | None = None,
        uidnext: int | None = None,
        highestmodseq: int | None = None,
        messages: int | None = None,
        unseen: int | None = None,
        delimiter: str | None = None,
        attributes: Iterable[str] | None = None,
        mailbox_id: str | None = None,
    ) -> None:
        """The folder's state as the server reports it (SELECT / STATUS / LIST)."""
        f = self._ensure()
        st = f.state
        changes: dict[str, Any] = {}
        if uidvalidity is not None and st.uidvalidity is not None and uidvalidity != st.uidvalidity:
            # RFC 3501 2.3.1.1: old UIDs mean nothing under a new UIDVALIDITY.
            key = {"fid": f.id}
            uids = list(self._conn.execute(_MESSAGE_UIDS, key).scalars())
            if uids:
                self._events.append(
                    _PendingEvent(
                        "message_removed", self.name, st.uidvalidity, sorted(uids), st.highestmodseq
                    )
                )
            self._conn.execute(_MESSAGES_DROP, key)
            self._flags.clear()
            self._updates.clear()
            self._new.clear()
            self._may_exist = False
            changes["last_synced_modseq"] = 0
            self.uidvalidity_reset = True
            log.info("uidvalidity changed, folder cache dropped", extra=kv(folder=self.name))
        if uidvalidity is not None:
            changes["uidvalidity"] = uidvalidity
            for ev in self._events:
                if ev.kind == "folder_added":
                    ev.uidvalidity = uidvalidity
        if uidnext is not None:
            changes["uidnext"] = uidnext
        if highestmodseq is not None:
            changes["highestmodseq"] = highestmodseq
        if delimiter is not None:
            changes["delimiter"] = delimiter
        if attributes is not None:
            changes["attributes"] = tuple(attributes)
        if mailbox_id is not None:
            changes["mailbox_id"] = mailbox_id
        f.update(**changes)
        if messages is not None:
            self._messages = messages
        if unseen is not None:
            self._unseen = unseen

    def _held_flags(self, folder_id: int | None, uid: int) -> str | None:
        """The flags of the message's row in the table; None when it has none."""
        flags = self._flags.get(uid)
        if flags is None and self._may_exist:
            flags = self._conn.execute(_MESSAGE_FLAGS, {"fid": folder_id, "uid": uid}).scalar()
            if flags is not None:
                self._flags[uid] = flags
        return flags

    def _set(self, uid: int, values: dict[str, Any]) -> None:
        """Columns to write to a message row in the table (at `_finish`)."""
        self._updates.setdefault(uid, {}).update(values)
        self._flags[uid] = values["flags"]

    def add_message(self, msg: MessageData) -> bool:
        """Insert (or refresh) a message; True when it was new (a message_added event)."""
        f = self._ensure()
        flags = _flags_text(msg.flags)
        # The row as inserted, keyed in the table's column order; a known message's update leaves
        # out the key columns (`_set`).
        row: dict[str, Any] = {
            "folder_id": f.id,
            "uid": msg.uid,
            "modseq": msg.modseq,
            "flags": flags,
            "seen": SEEN in msg.flags,
            "internaldate": msg.internaldate,
            "size": msg.size,
            "from_addr": msg.from_,
            "to": msg.to,
            "subject": msg.subject,
            "date": msg.date,
            "message_id": msg.message_id,
            "preview": msg.preview,
            "body": msg.body,
        }
        pending = self._new.get(msg.uid)
        old_flags = pending["flags"] if pending is not None else self._held_flags(f.id, msg.uid)
        if old_flags is not None and old_flags != flags:
            ev = _PendingEvent(
                "flags_changed",
                self.name,
                f.state.uidvalidity,
                [msg.uid],
                msg.modseq,
                flags=sorted(msg.flags),
            )
            self._events.append(ev)
        if pending is not None:
            pending.update(row)
            return False
        if old_flags is not None:
            del row["folder_id"], row["uid"]
            self._set(msg.uid, row)
            return False
        self._new[msg.uid] = row
        ev = _PendingEvent(
            "message_added",
            self.name,
            f.state.uidvalidity,
            [msg.uid],
            msg.modseq,
            msg=msg,
            flags=sorted(msg.flags),
        )
        self._events.append(ev)
        return True

    def set_flags(self, uid: int, flags: Iterable[str], modseq: int | None = None) -> bool:
        """New flags for a known message; True when they differ (a flags_changed event)."""
        f = self._ensure()
        flags = set(flags)
        text_ = _flags_text(flags)
        values: dict[str, Any] = {"flags": text_, "seen": SEEN in flags}
        if modseq is not None:
            values["modseq"] = modseq
        pending = self._new.get(uid)
        if pending is not None:
            changed = bool(pending["flags"] != text_)
            pending.update(values)
        else:
            old = self._held_flags(f.id, uid)
            if old is None:
                return False
            changed = old != text_
            self._set(uid, values)
        if changed:
            self._events.append(
                _PendingEvent(
                    "flags_changed", self.name, f.state.uidvalidity, [uid], modseq, flags=sorted(flags)
                )
            )
        return changed

    def vanish(self, uids: Iterable[int], modseq: int | None = None) -> list[int]:
        """Expunged UIDs; returns those the cache held (one message_removed event for them)."""
        f = self._ensure()
        wanted = sorted(set(uids))
        if not wanted:
            return []
        held = [u for u in wanted if self._new.pop(u, None) is not None]
        for uid in wanted:
            self._flags.pop(uid, None)
            self._updates.pop(uid, None)
        if self._may_exist:
            for part in in_chunks(wanted):
                where = {"fid": f.id, "items": part}
                held += self._conn.execute(_HELD_UIDS, where).scalars()
                self._conn.execute(_HELD_DROP, where)
        held = sorted(set(held))
        if held:
            ev = _PendingEvent("message_removed", self.name, f.state.uidvalidity, held, modseq)
            self._events.append(ev)
        return held

    def _write_rows(self) -> None:
        """This folder's changed and new message rows (it is in the table: it has an id)."""
        fid = self._folder.id if self._folder is not None else None
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for uid, values in self._updates.items():
            params = {"fid": fid, "muid": uid, **{f"v_{c}": v for c, v in values.items()}}
            by_columns.setdefault(tuple(values), []).append(params)
        for columns, params_list in by_columns.items():
            _message_update(columns).execute(self._conn, params_list)
        self._updates.clear()
        if self._new:
            _MESSAGE_INSERT.execute(self._conn, list(self._new.values()))
            self._new.clear()

    def _finish(self) -> None:
        """Counts, summary, events; the batch (`Cache.folders_sync`) writes what all folders share."""
        c = self._cache
        f = self._ensure()
        b = self._batch
        (b.changed if f.id is not None else b.added).append(f)
        last: LastMessage | None = None
        if not self._may_exist:
            # Nothing of this folder is in the table: counts and the last message come from the
            # new rows, which go in with the whole batch's (no query per folder).
            rows = list(self._new.values())
            b.messages.append((f, rows))
            self._new.clear()
            if self._messages is None:
                self._messages = len(rows)
            if self._unseen is None:
                self._unseen = sum(1 for r in rows if not r["seen"])
            top = max(rows, key=lambda r: int(r["uid"]), default=None)
            if top is not None:
                last = LastMessage(
                    uid=top["uid"],
                    from_=top["from_addr"],
                    subject=top["subject"],
                    date=top["date"],
                    preview=top["preview"],
                )
        else:
            self._write_rows()
            key = {"fid": f.id}
            if self._messages is None or self._unseen is None:
                total, unseen_n = self._conn.execute(_COUNTS, key).one()
                if self._messages is None:
                    self._messages = int(total)
                if self._unseen is None:
                    self._unseen = int(unseen_n)
            newest = self._conn.execute(_NEWEST, key).first()
            if newest is not None:
                uid, from_, subject, date, preview = newest
                last = LastMessage(uid=uid, from_=from_, subject=subject, date=date, preview=preview)
        st = f.state
        synced = (
            st.last_synced_modseq
            if st.highestmodseq is None
            else max(st.last_synced_modseq, st.highestmodseq)
        )
        f.update(messages=self._messages, unseen=self._unseen, last_synced_modseq=synced)
        topic = c.topics.events(self.name)
        for ev in self._events:
            if ev.modseq is None and ev.kind in ("message_removed", "folder_added"):
                ev.modseq = f.state.highestmodseq
            c._write_event(self._s, ev, topic)
        b.summaries.add(c.topics.summary(self.name))
        c._write_summary(self._s, self.name, f.state, last=last, purge=False)
        if self.name in b.pending:
            b.synced.append(self.name)


class LocalChange:
    """Optimistic cache changes inside one transaction; made by `Cache.local_change`.

    Events get ids that include the action's id (`tag`): a local change has no MODSEQ yet, and
    without it a rollback and a repeat of the same change would share an id with the first."""

    def __init__(self, cache: Cache, session: Session) -> None:
        self._cache = cache
        self.session = session
        self._touched: dict[str, Folder | None] = {}

    def folder(self, name: str) -> Folder | None:
        if name not in self._touched:
            self._touched[name] = self._cache._folder_row(self.session, name)
        return self._touched[name]

    def flags(self, name: str, uids: Iterable[int]) -> dict[int, tuple[frozenset[str], int | None]]:
        """uid -> (flags, modseq) of the cached messages among `uids`."""
        f = self.folder(name)
        wanted = sorted(set(uids))
        out: dict[int, tuple[frozenset[str], int | None]] = {}
        if f is None:
            return out
        for i in range(0, len(wanted), 500):
            q = select(Message).where(Message.folder_id == f.id, col(Message.uid).in_(wanted[i : i + 500]))
            for m in self.session.exec(q):
                out[m.uid] = (_flags_set(m.flags), m.modseq)
        return out

    def set_flags(self, name: str, uid: int, flags: Iterable[str], *, tag: str) -> bool:
        """Give a cached message these flags (one flags_changed event); False if not cached or same."""
        f = self.folder(name)
        if f is None:
            return False
        with self.session.no_autoflush:
            row = self.session.get(Message, (f.id, uid))
        text_ = _flags_text(flags)
        if row is None or row.flags == text_:
            return False
        row.flags, row.seen = text_, SEEN in set(flags)
        self.session.add(row)
        ev = _PendingEvent("flags_changed", name, f.uidvalidity, [uid], None, flags=sorted(set(flags)))
        self._event(ev, tag)
        return True

    def remove(self, name: str, uids: Iterable[int], *, tag: str) -> list[int]:
        """Drop cached messages (one message_removed event); returns those that were cached."""
        f = self.folder(name)
        wanted = sorted(set(uids))
        if f is None or not wanted:
            return []
        self.session.flush()
        held: list[int] = []
        for i in range(0, len(wanted), 500):
            where = (col(Message.folder_id) == f.id, col(Message.uid).in_(wanted[i : i + 500]))
            held += list(self.session.exec(select(Message.uid).where(*where)))
            self.session.exec(delete(Message).where(*where))
        if held:
            self._event(_PendingEvent("message_removed", name, f.uidvalidity, sorted(held), None), tag)
        return sorted(held)

    def write(self, topic: str, payload: str, key: str) -> None:
        """An outbox row (QoS 1, not retained) in this transaction; `key` orders it."""
        self._cache._write_raw(self.session, topic, payload, key, None)

    def _event(self, ev: _PendingEvent, tag: str) -> None:
        c = self._cache
        payload = c._event_payload(ev, _txn_now(self.session))
        key = json.dumps([payload.id, tag])
        payload = payload.model_copy(update={"id": hashlib.sha256(key.encode()).hexdigest()[:32]})
        c._write_raw(self.session, c.topics.events(ev.folder), payload.to_json(), ev.folder, payload.id)

    def _finish(self) -> None:
        """Counts and retained summary of every folder touched (a summary is what apps render)."""
        s = self.session
        s.flush()
        for name, f in self._touched.items():
            if f is None:
                continue
            base = select(func.count()).select_from(Message).where(Message.folder_id == f.id)
            f.messages = int(s.exec(base).one())
            f.unseen = int(s.exec(base.where(col(Message.seen).is_(False))).one())
            s.add(f)
            self._cache._write_summary(s, name, f)


def open_cache(settings: DaemonSettings) -> Cache:
    """`Cache.open` with the account, topic prefix, QoS and trace cap from the daemon settings."""
    return Cache.open(
        settings.cache.path,
        settings.account.id,
        topic_prefix=settings.mqtt.topic_prefix,
        event_qos=settings.mqtt.qos,
        trace_max_entries=settings.trace.max_entries,
    )
