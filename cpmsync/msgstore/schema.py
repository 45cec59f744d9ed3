"""Tables of the message store (SQLAlchemy Core: portable across SQLite and PostgreSQL).

One MODSEQ counter per user (`cpm_user.modseq`) feeds every change of every mailbox of that user,
which is what makes MODSEQs unique across mailboxes (CR Appendix I.3). `mailbox.highestmodseq` is
indexed with the user so LIST (CHANGEDSINCE m) reads only the mailboxes that changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Connection

__all__ = [
    "FLAG_BITS",
    "blob",
    "connection_claim",
    "expunged",
    "mailbox",
    "mailbox_rename",
    "mailbox_tombstone",
    "message",
    "metadata",
    "subscription",
    "user",
]

metadata = MetaData()

# SQLite only auto-assigns INTEGER PRIMARY KEY (the rowid alias), not BIGINT.
_Id = BigInteger().with_variant(Integer(), "sqlite")

# System flags are bits so SEARCH UNSEEN / EXPUNGE of \Deleted are plain SQL predicates.
FLAG_BITS = {"\\seen": 1, "\\answered": 2, "\\flagged": 4, "\\deleted": 8, "\\draft": 16}

user = Table(
    "cpm_user",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("modseq", BigInteger, nullable=False, default=0),
    # Next UIDVALIDITY: per-user counter so a re-created name never reuses one (RFC 3501 2.3.1.1).
    Column("uidvalidity_next", BigInteger, nullable=False),
)

mailbox = Table(
    "mailbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", _Id, ForeignKey("cpm_user.id"), nullable=False),
    Column("name", String(1024), nullable=False),
    # Parent name ("" at top level): CHILDREN / HasChildren without LIKE on names.
    Column("parent", String(1024), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),
    Column("created_modseq", BigInteger, nullable=False),
    Column("nomodseq", Boolean, nullable=False, default=False),
    Column("mailboxid", String(64), nullable=False, unique=True),
    # RFC 3501 \Recent: UIDs >= this were not yet seen by a read-write SELECT.
    Column("first_recent_uid", BigInteger, nullable=False, default=1),
    UniqueConstraint("user_id", "name", name="uq_mailbox_user_name"),
    Index("ix_mailbox_user_highestmodseq", "user_id", "highestmodseq"),
    Index("ix_mailbox_user_parent", "user_id", "parent"),
    sqlite_autoincrement=True,  # see _NO_REUSE_TABLES
)

subscription = Table(
    "subscription",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", _Id, ForeignKey("cpm_user.id"), nullable=False),
    Column("name", String(1024), nullable=False),
    UniqueConstraint("user_id", "name", name="uq_subscription_user_name"),
)

# Message bytes apart from metadata: metadata scans stay small, COPY shares the bytes.
blob = Table(
    "blob",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("data", LargeBinary, nullable=False),
    sqlite_autoincrement=True,  # see _NO_REUSE_TABLES
)

message = Table(
    "message",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("mailbox_id", _Id, ForeignKey("mailbox.id"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("sysflags", Integer, nullable=False, default=0),
    # Keywords as " a b " so one keyword is a LIKE '% a %' test; "" when none.
    Column("keywords", Text, nullable=False, default=""),
    Column("internaldate", BigInteger, nullable=False),  # UTC epoch seconds
    Column("tz_min", Integer, nullable=False, default=0),  # zone of the INTERNALDATE, minutes east
    Column("internal_day", Integer, nullable=False),  # days since epoch in that zone (SEARCH BEFORE/ON/SINCE)
    Column("sent_day", Integer, nullable=True),  # from the Date: header (SENTBEFORE/SENTON/SENTSINCE)
    Column("size", Integer, nullable=False),
    Column("blob_id", _Id, ForeignKey("blob.id"), nullable=False),
    Column("emailid", String(64), nullable=False),
    Column("threadid", String(64), nullable=True),
    UniqueConstraint("mailbox_id", "uid", name="uq_message_mailbox_uid"),
    Index("ix_message_mailbox_modseq", "mailbox_id", "modseq"),
    Index("ix_message_blob", "blob_id"),
    sqlite_autoincrement=True,  # see _NO_REUSE_TABLES
)

# Expunge tombstones: VANISHED (EARLIER) and CHANGEDSINCE need (uid, modseq) of what left.
expunged = Table(
    "expunged",
    metadata,
    Column("mailbox_id", _Id, primary_key=True),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
    Index("ix_expunged_mailbox_modseq", "mailbox_id", "modseq"),
)

# Deleted mailboxes: LIST (CHANGEDSINCE m) reports them once with \NonExistent (our extension).
mailbox_tombstone = Table(
    "mailbox_tombstone",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", _Id, nullable=False),
    Column("mailbox_id", _Id, nullable=False),
    Column("name", String(1024), nullable=False),
    Column("mailboxid", String(64), nullable=False),
    Column("created_modseq", BigInteger, nullable=False),
    Column("deleted_modseq", BigInteger, nullable=False),
    Column("nomodseq", Boolean, nullable=False, default=False),
    Index("ix_tombstone_user_modseq", "user_id", "deleted_modseq"),
)

# Rename history: OLDNAME under CHANGEDSINCE m is the name the mailbox had at m.
mailbox_rename = Table(
    "mailbox_rename",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", _Id, nullable=False),
    Column("mailbox_id", _Id, nullable=False),
    Column("old_name", String(1024), nullable=False),
    Column("new_name", String(1024), nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Index("ix_rename_user_modseq", "user_id", "modseq"),
)

# Connections each running instance holds per user (PostgreSQL with several instances), so the
# per-user connection limit holds across them; only instances whose listener connection is alive
# count (connection_limits.py).
connection_claim = Table(
    "connection_claim",
    metadata,
    Column("user_name", String(255), primary_key=True),
    Column("instance", String(32), primary_key=True),
    Column("connections", Integer, nullable=False),
)


# Without AUTOINCREMENT SQLite hands the id of a deleted newest row out again; history keyed on
# mailbox.id (renames, tombstones) would then attach to the new mailbox. PostgreSQL never reuses.
# Tables whose ids must never be handed out twice, parents first, with the history tables whose
# ids of already deleted rows the sequence must stay above. `message` references the other two,
# so the three are rebuilt together.
_NO_REUSE_TABLES = ((mailbox, (mailbox_tombstone, mailbox_rename, expunged)), (blob, ()), (message, ()))


@event.listens_for(metadata, "after_create")
def _upgrade_sqlite_autoincrement(_target: Any, connection: Connection, **_kw: Any) -> None:
    """A SQLite file created before AUTOINCREMENT: rebuild those tables once, ids unchanged.

    All three are renamed away first (SQLite then points `message`'s foreign keys at the old
    tables), recreated, copied parents first, and the old ones dropped child first, so every
    foreign key holds at every step. The sequence starts above every id the history tables still
    hold, so no deleted mailbox's id comes back.
    """
    if connection.dialect.name != "sqlite":
        return
    sqls = [
        connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
        ).scalar()
        for table, _ in _NO_REUSE_TABLES
    ]
    if all(sql is None or "AUTOINCREMENT" in sql.upper() for sql in sqls):
        return
    for table, _ in _NO_REUSE_TABLES:
        for index in table.indexes:
            connection.exec_driver_sql(f'DROP INDEX IF EXISTS "{index.name}"')
        connection.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{table.name}__old"')
    for table, _ in _NO_REUSE_TABLES:
        table.create(connection)
    for table, history in _NO_REUSE_TABLES:
        cols = ", ".join(f'"{c.name}"' for c in table.columns)
        connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM "{table.name}__old"'
        )
        top = max(
            connection.exec_driver_sql(f'SELECT coalesce(max({col}), 0) FROM "{name}"').scalar_one()
            for name, col in [(table.name, "id")] + [(h.name, "mailbox_id") for h in history]
        )
        connection.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table.name,))
        connection.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table.name, top))
    for table, _ in reversed(_NO_REUSE_TABLES):
        connection.exec_driver_sql(f'DROP TABLE "{table.name}__old"')
