"""One IMAP connection: the sans-I/O ImapConnection (server role), the store, and push.

One task per connection, the session loop, which runs one command at a time. What wakes it goes
through its inbox: bytes the connection's protocol (SessionProtocol) received, the end of the
connection, and a wake-up when this user's committed changes (ChangeHub) queue in the session's
subscription.
Responses are collected and written in large batches (one write and drain per ~64 KiB), never
one drain per line. The commands live in concept modules (session_auth, session_mailbox,
session_message, session_push) on top of session_base; this class only assembles them. Each
handler is marked with the commands it handles (`@handles`), and the dispatch table is built
from those marks.
"""

from __future__ import annotations

from cpmsync.msgstore.session_auth import AuthCommands
from cpmsync.msgstore.session_mailbox import MailboxCommands
from cpmsync.msgstore.session_message import MessageCommands

__all__ = ["Session"]


class Session(AuthCommands, MailboxCommands, MessageCommands):
    """One connection; `await Session(ctx, reader, writer, tls=...).run()`."""
