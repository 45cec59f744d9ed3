"""SQLModel tables of the daemon's local cache (SQLite, WAL mode).

The cache mirrors the server for the UI apps and holds the outbox: MQTT events are written in
the same transaction as the cache change they describe, so neither can exist without the other.
Bump `SCHEMA_VERSION` whenever a table changes, and teach `cpmsync.models.schema` to migrate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

__all__ = [
    "SCHEMA_VERSION",
    "Account",
    "ActionRow",
    "Folder",
    "Message",
    "NetworkHeartbeat",
    "OutboxRow",
    "OutboxSeq",
    "PendingFolder",
    "SchemaVersion",
    "SyncRun",
    "TraceEntry",
]

SCHEMA_VERSION = 3
"""v1 lacked the trace table and the outbox's per-folder sequence; v2 could reuse outbox ids.
See schema.MIGRATIONS."""


class SchemaVersion(SQLModel, table=True):
    """One row: the schema version that wrote this file."""

    __tablename__ = "schema_version"
    id: int = Field(default=1, primary_key=True)
    version: int


class Account(SQLModel, table=True):
    """The account being mirrored; `watermark` is the LIST (CHANGEDSINCE (m)) argument for the next sync."""

    __tablename__ = "account"
    id: str = Field(primary_key=True)
    server: str | None = None
    capabilities: str = ""  # space separated, as the server sent them
    watermark: int = 0
    sync_target: int = 0  # max HIGHESTMODSEQ of the current discovery
    strategy: str | None = None


class PendingFolder(SQLModel, table=True):
    """A folder a discovery found changed whose sync is not committed yet: it holds the watermark back."""

    __tablename__ = "pending_folder"
    account_id: str = Field(primary_key=True, foreign_key="account.id")
    name: str = Field(primary_key=True)


class Folder(SQLModel, table=True):
    """A mailbox as last synced; counts and modseqs as the server reported them."""

    __tablename__ = "folder"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_folder_name"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    name: str
    delimiter: str | None = None
    attributes: str = ""  # space separated
    mailbox_id: str | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    messages: int = 0
    unseen: int = 0
    last_synced_modseq: int = 0


class FolderGeneration(SQLModel, table=True):
    """How many times a folder name was dropped from the cache. A folder added back under that
    name is a new incarnation and its events get new ids: an app that dropped the old ones with
    the folder would otherwise drop the repeats as duplicates (event ids in models/events.py)."""

    __tablename__ = "folder_generation"
    account_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    removed: int = 0


class Message(SQLModel, table=True):
    """One message's metadata and preview; the body only when configured and small enough."""

    __tablename__ = "message"
    __table_args__ = (
        # Apps list a folder newest first. The sync's own questions ("which UIDs do we hold", the
        # newest by UID) are answered by the primary key; see schema.RETIRED_INDEXES.
        Index("ix_message_folder_date", "folder_id", "date"),
    )
    folder_id: int = Field(foreign_key="folder.id", primary_key=True)
    uid: int = Field(primary_key=True)
    modseq: int | None = None
    flags: str = ""  # space separated, sorted
    seen: bool = False
    internaldate: datetime | None = None
    size: int | None = None
    from_: str | None = Field(default=None, sa_column_kwargs={"name": "from_addr"})
    to: str | None = None
    subject: str | None = None
    date: datetime | None = None
    message_id: str | None = None
    preview: str | None = None
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class SyncRun(SQLModel, table=True):
    """One sync: which strategy, how many bytes at the IMAP layer and on the wire (after compression)."""

    __tablename__ = "sync_run"
    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)
    started: datetime
    ended: datetime | None = None
    strategy: str = Field(index=True)
    bytes_in: int = 0
    bytes_out: int = 0
    wire_bytes_in: int = 0
    wire_bytes_out: int = 0
    folders_touched: int = 0
    error: str | None = None


class OutboxRow(SQLModel, table=True):
    """An MQTT message waiting for the broker's acknowledgement; deleted only after it."""

    __tablename__ = "outbox"
    # AUTOINCREMENT: an id is never reused. Without it SQLite hands out max(id)+1, so a row
    # deleted while in flight (a superseded summary) gave its id to a new row, and the late
    # PUBACK of the old one deleted the new, unsent event. Read and deleted by id, and retained
    # summaries by topic: no other index (schema.RETIRED_INDEXES).
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(index=True)
    payload: str  # JSON text; "" = empty retained payload (clears a retained topic)
    qos: int = 1
    retain: bool = False
    created: datetime
    folder: str = ""  # per-folder ordering key
    seq: int = 0  # per-folder sequence number (1, 2, ...)
    event_id: str | None = None


class TraceEntry(SQLModel, table=True):
    """(time, direction, bytes) per connection, for the simulator's trace mode."""

    __tablename__ = "trace"
    __table_args__ = (Index("ix_trace_conn_t", "conn_id", "t"),)
    id: int | None = Field(default=None, primary_key=True)
    conn_id: str
    t: float  # unix seconds
    direction: str  # "in" | "out"
    nbytes: int


class OutboxSeq(SQLModel, table=True):
    """Last per-folder sequence number handed out, so numbering survives acknowledged rows' deletion."""

    __tablename__ = "outbox_seq"
    folder: str = Field(primary_key=True)
    last_seq: int = 0


class NetworkHeartbeat(SQLModel, table=True):
    """What the heartbeat ladder learned on one network (daemon/schedule.py): the longest idle
    interval that survived, the shortest that did not. Kept so a restart or a return to a known
    network does not probe again from the start. A new table: create_all adds it to older files."""

    __tablename__ = "network_heartbeat"
    account_id: str = Field(primary_key=True)
    network_id: str = Field(primary_key=True)
    good_s: float = 0.0
    bad_s: float | None = None
    probe_s: float = 0.0
    since_s: float = 0.0  # unix seconds of the last loss or re-probe
    updated: datetime


class ActionRow(SQLModel, table=True):
    """An app's action (daemon/actions.py): queued in the same transaction as its optimistic change
    to the cache, kept after it finished so a repeated `action_id` gets the recorded result.
    A new table: create_all adds it to older files."""

    __tablename__ = "action_queue"
    __table_args__ = (
        UniqueConstraint("account_id", "action_id", name="uq_action_id"),
        Index("ix_action_state_seq", "state", "seq"),
        {"sqlite_autoincrement": True},
    )
    seq: int | None = Field(default=None, primary_key=True)  # acceptance order = replay order
    account_id: str
    action_id: str
    kind: str
    folder: str = ""  # followed across renames (Cache.rename_folder)
    request: str  # the action as accepted, JSON (uids resolved, cache facts at accept)
    state: str = "queued"  # queued | applied | failed
    tries: int = 0
    result: str  # the latest ActionResult, JSON
    response_topic: str | None = None  # MQTT 5 request/response: where results go as well
    correlation: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    replied: str = ""  # the last state sent to response_topic
    accepted: datetime
    updated: datetime
