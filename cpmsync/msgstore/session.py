"""One IMAP connection: the codec's CommandParser, the state machine, the store, and push.

Three tasks per connection, owned by one TaskGroup: a reader that moves socket bytes into the
inbox, a pump that moves this user's committed changes (ChangeHub) into the session, and the
session loop itself, which runs one command at a time. Responses are collected and written in
large batches (one write and drain per ~64 KiB), never one drain per line. The commands live in
concept modules (session_auth, session_mailbox, session_message, session_push) on top of
session_base; this class only assembles them and their dispatch table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cpmsync.imap import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    CompressCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    NotifyCommand,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    SubscribeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from cpmsync.msgstore.session_auth import AuthCommands
from cpmsync.msgstore.session_mailbox import MailboxCommands
from cpmsync.msgstore.session_message import MessageCommands

if TYPE_CHECKING:
    from cpmsync.msgstore.server import ServerContext

__all__ = ["Session"]


class Session(AuthCommands, MailboxCommands, MessageCommands):
    """One connection; `await Session(ctx, reader, writer, tls=...).run()`."""

    def __init__(
        self,
        ctx: ServerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        super().__init__(ctx, reader, writer, tls=tls)
        self._handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            CapabilityCommand: self._capability,
            NoopCommand: self._noop,
            CheckCommand: self._noop,
            LogoutCommand: self._logout,
            IdCommand: self._id,
            StartTlsCommand: self._starttls,
            LoginCommand: self._login,
            AuthenticateCommand: self._authenticate,
            EnableCommand: self._enable,
            SelectCommand: self._select,
            CreateCommand: self._create,
            DeleteCommand: self._delete,
            RenameCommand: self._rename,
            SubscribeCommand: self._subscribe,
            UnsubscribeCommand: self._unsubscribe,
            NamespaceCommand: self._namespace,
            ListCommand: self._list,
            LsubCommand: self._lsub,
            StatusCommand: self._status,
            AppendCommand: self._append,
            CloseCommand: self._close,
            UnselectCommand: self._unselect,
            ExpungeCommand: self._expunge,
            SearchCommand: self._search,
            FetchCommand: self._fetch,
            StoreCommand: self._store,
            CopyCommand: self._copy,
            MoveCommand: self._move,
            IdleCommand: self._idle,
            NotifyCommand: self._notify,
            CompressCommand: self._compress,
        }
