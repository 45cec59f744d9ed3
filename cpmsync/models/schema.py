"""Open the cache file: WAL mode, schema version check, migrate or rebuild.

A cache is only a copy of the server, so when no migration path exists (a version we do not
know, a newer file, a damaged file) it is dropped and rebuilt by a full resync; either way one
log line says what happened. Only OUR files are ever dropped: a cache carries
`PRAGMA application_id = APPLICATION_ID`, and anything else at `cache.path` (a typo pointing at
a text file or a msgstore database) is refused with a ConfigError, byte for byte untouched.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel, create_engine

from cpmsync.config import ConfigError
from cpmsync.logs import kv
from cpmsync.models import tables
from cpmsync.models.tables import SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "MIGRATIONS", "CacheSchemaError", "OpenResult", "open_engine"]

log = logging.getLogger("cpmsync.daemon.cache")

BUSY_TIMEOUT_MS = 5000

APPLICATION_ID = int.from_bytes(b"CPMc", "big")
"""`PRAGMA application_id` of every cpmsync cache: the file is ours to migrate or drop."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_APP_ID_OFFSET = 68  # in the 100-byte SQLite header, big-endian
_OUR_TABLES = frozenset({"schema_version", "account", "folder", "message", "outbox"})


def _migrate_1_to_2(conn: Any) -> None:
    """v2 added the byte trace and per-folder outbox sequence numbers."""
    conn.execute(text("ALTER TABLE outbox ADD COLUMN folder VARCHAR NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE outbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0"))
    # trace and outbox_seq tables are created by create_all() afterwards.


class CacheSchemaError(Exception):
    """A reader that may not change the file (e.g. `cpmsync daemon stats`) found another schema."""


def _migrate_2_to_3(conn: Any) -> None:
    """v3 made outbox ids AUTOINCREMENT (never reused); SQLite needs the table rebuilt for that."""
    outbox = tables.OutboxRow.__table__  # type: ignore[attr-defined]
    cols = ", ".join(c.name for c in outbox.columns)
    conn.execute(text("ALTER TABLE outbox RENAME TO outbox_v2"))
    for idx in outbox.indexes:
        conn.execute(text(f"DROP INDEX IF EXISTS {idx.name}"))
    conn.execute(CreateTable(outbox))
    for idx in outbox.indexes:
        idx.create(conn)
    conn.execute(text(f"INSERT INTO outbox ({cols}) SELECT {cols} FROM outbox_v2"))
    conn.execute(text("DROP TABLE outbox_v2"))


MIGRATIONS: dict[int, Callable[[Any], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3}
"""from-version -> step to from-version + 1, run in one transaction."""

RETIRED_INDEXES = ("ix_message_message_id", "ix_message_folder_modseq", "ix_outbox_folder_seq")
"""Indexes that caches made by earlier versions have and no query uses (the outbox is read and
deleted by id and topic). Every message a sync inserts paid for all three (3.1 % of a first sync's
instructions per message), and the Message-ID one puts each row in a random leaf page, so a commit
wrote one more page per message to the device's flash. They are dropped when the daemon opens such
a cache; no version bump, since an older daemon that opens the file again just builds them back."""


def _drop_retired_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in RETIRED_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


@dataclass(frozen=True)
class OpenResult:
    engine: Engine
    rebuilt: bool
    migrated_from: int | None
    reason: str | None


def _make_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL: a power cut may lose the last commits, never corrupt; the server resends them.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _read_version(engine: Engine) -> int | None:
    """None = empty file (new cache); 0 = tables without a version row (unknown layout)."""
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        if not names:
            return None
        if "schema_version" not in names:
            return 0
        row = conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).first()
        return int(row[0]) if row else 0


def _remove_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _check_ours(path: Path) -> None:
    """Raise ConfigError unless `path` is absent, empty, or a cpmsync cache (stamped or pre-stamp).

    Runs before any connection with pragmas: even `PRAGMA journal_mode=WAL` would write to it.
    A pre-stamp cache (schema v1-v3 before APPLICATION_ID) is recognised by its tables.
    """
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"cache.path {path} cannot be read: {e.strerror}") from None
    if not head:
        return
    refuse = ConfigError(f"cache.path {path} is not a cpmsync cache; refusing to overwrite it")
    if not head.startswith(_SQLITE_MAGIC):
        raise refuse
    if int.from_bytes(head[_APP_ID_OFFSET : _APP_ID_OFFSET + 4], "big") == APPLICATION_ID:
        return  # ours, even if damaged further on
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            # Read through the WAL: a fresh cache's stamp may not be checkpointed into the header yet.
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error:
        raise refuse from None
    if app_id == APPLICATION_ID or not names or (app_id == 0 and _OUR_TABLES <= names):
        return
    raise refuse


def _stamp(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(text("PRAGMA application_id")).scalar() != APPLICATION_ID:
            conn.execute(text(f"PRAGMA application_id = {APPLICATION_ID}"))


def _create(engine: Engine) -> None:
    assert tables.SCHEMA_VERSION  # importing the tables module registers them in the metadata
    _stamp(engine)  # first: a concurrent reader never sees our tables without the stamp
    SQLModel.metadata.create_all(engine)
    _drop_retired_indexes(engine)  # a migrated cache's
    with engine.begin() as conn:
        conn.execute(
            text("INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, :v)"), {"v": SCHEMA_VERSION}
        )


def open_engine(path: Path | str, *, upgrade: bool = True) -> OpenResult:
    """Open (creating, migrating or rebuilding) the cache at `path`.

    With `upgrade=False` (readers such as `cpmsync daemon stats`) a file of another schema version
    raises CacheSchemaError instead: only the daemon may migrate or drop its cache.
    A file that is not a cpmsync cache raises ConfigError and is left untouched.
    """
    path = Path(path).expanduser()
    _check_ours(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = _make_engine(path)
    damaged: str | None = None
    try:
        version = _read_version(engine)
    except DatabaseError as e:
        version, damaged = -1, str(e.orig if hasattr(e, "orig") else e)

    if not upgrade and version != SCHEMA_VERSION:
        engine.dispose()
        found = "unreadable" if damaged else "empty" if version is None else f"schema v{version}"
        raise CacheSchemaError(
            f"{path}: {found}, this cpmsync reads v{SCHEMA_VERSION}; run the daemon to upgrade"
        )
    if version is None:
        _create(engine)
        return OpenResult(engine, rebuilt=False, migrated_from=None, reason=None)
    if version == SCHEMA_VERSION:
        SQLModel.metadata.create_all(engine)  # indexes added without a version bump
        if upgrade:
            _stamp(engine)  # a cache made before the stamp existed
            _drop_retired_indexes(engine)
        return OpenResult(engine, rebuilt=False, migrated_from=None, reason=None)

    if 0 < version < SCHEMA_VERSION and all(v in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        with engine.begin() as conn:
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](conn)
        _create(engine)
        log.info(
            "cache migrated",
            extra=kv(path=str(path), from_version=version, to_version=SCHEMA_VERSION),
        )
        return OpenResult(engine, rebuilt=False, migrated_from=version, reason=None)

    if damaged is not None:
        reason = f"unreadable ({damaged})"
    elif version > SCHEMA_VERSION:
        reason = f"schema v{version} is newer than this daemon's v{SCHEMA_VERSION}"
    else:
        reason = f"no migration from schema v{version} to v{SCHEMA_VERSION}"
    engine.dispose()
    _remove_files(path)
    engine = _make_engine(path)
    _create(engine)
    log.warning(
        "cache rebuilt: dropped, a full resync from the server follows",
        extra=kv(path=str(path), reason=reason, from_version=version, to_version=SCHEMA_VERSION),
    )
    return OpenResult(engine, rebuilt=True, migrated_from=None, reason=reason)
