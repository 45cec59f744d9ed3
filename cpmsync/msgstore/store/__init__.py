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

from cpmsync.msgstore.store.bulk import BulkMailbox, BulkMessage, BulkOps
from cpmsync.msgstore.store.changes import ChangeOps
from cpmsync.msgstore.store.listing import ListingOps
from cpmsync.msgstore.store.mailboxes import MailboxOps
from cpmsync.msgstore.store.messages import MessageOps
from cpmsync.msgstore.store.search import SearchOps
from cpmsync.msgstore.store.statements import DELIMITER
from cpmsync.msgstore.store.users import UserOps

__all__ = ["DELIMITER", "BulkMailbox", "BulkMessage", "MessageStore"]


class MessageStore(UserOps, MailboxOps, ListingOps, MessageOps, SearchOps, ChangeOps, BulkOps):
    """Users, mailboxes and messages in any SQLAlchemy database (SQLite file by default).

    One facade over the concerns, each in its own module (crymap's account state split by concern):
    engine (connections, locks, transactions, STATUS), users, mailboxes, listing, messages, search,
    changes (cross-instance push), bulk (seeding); statements holds what they share.
    """
