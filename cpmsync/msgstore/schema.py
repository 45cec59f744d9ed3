"""Tables of the message store (SQLAlchemy Core: portable across SQLite and PostgreSQL).

One MODSEQ counter per user (`cpm_user.modseq`) feeds every change of every mailbox of that user,
which is what makes MODSEQs unique across mailboxes (CR Appendix I.3). `mailbox.highestmodseq` is
indexed with the user so LIST (CHANGEDSINCE m) reads only the mailboxes that changed.
"""

from __future__ import annotations

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
)

__all__ = [
    "FLAG_BITS",
    "blob",
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
