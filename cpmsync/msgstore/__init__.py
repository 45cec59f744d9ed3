"""The reference CPM Message Store: SQL storage with per-user MODSEQs, settings, admin CLI.

The IMAP server (server/session modules) is built on `MessageStore`; see the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy: `cpmsync --help` must not pay for SQLAlchemy and argon2 (the CLI lives in this package).
if TYPE_CHECKING:
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
        StoreError,
        UserExists,
    )
    from cpmsync.msgstore.hub import ChangeHub, EventKind, StoreEvent, Subscription, SubscriptionClosed
    from cpmsync.msgstore.mailbox_pattern import MailboxPattern, PatternSet, canonical_name, match_mailbox
    from cpmsync.msgstore.records import (
        MAX_UID,
        SYSTEM_FLAGS,
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
    from cpmsync.msgstore.settings import (
        MsgstoreSettings,
        legacy_preset,
        load_msgstore_settings,
        parse_hostport,
    )
    from cpmsync.msgstore.store import DELIMITER, BulkMailbox, BulkMessage, MessageStore

_LAZY: dict[str, str] = {
    "AppendResult": "records",
    "BulkMailbox": "store",
    "BulkMessage": "store",
    "CannotDeleteInbox": "errors",
    "ChangeHub": "hub",
    "CopyResult": "records",
    "DELIMITER": "store",
    "EventKind": "hub",
    "ExpungeResult": "records",
    "FlagMode": "records",
    "InvalidName": "errors",
    "MAX_UID": "records",
    "MailboxChanges": "records",
    "MailboxExists": "errors",
    "MailboxHasChildren": "errors",
    "MailboxListing": "records",
    "MailboxPattern": "mailbox_pattern",
    "MailboxStatus": "records",
    "MessageRecord": "records",
    "MessageStore": "store",
    "MoveResult": "records",
    "MsgstoreSettings": "settings",
    "NoSuchMailbox": "errors",
    "NoSuchMessage": "errors",
    "NoSuchSubscription": "errors",
    "NoSuchUser": "errors",
    "PatternSet": "mailbox_pattern",
    "SYSTEM_FLAGS": "records",
    "SearchFilter": "records",
    "SearchResult": "records",
    "SelectInfo": "records",
    "StoreBusy": "errors",
    "StoreError": "errors",
    "StoreEvent": "hub",
    "StoreResult": "records",
    "Subscription": "hub",
    "SubscriptionClosed": "hub",
    "UidSet": "records",
    "UserExists": "errors",
    "canonical_name": "mailbox_pattern",
    "legacy_preset": "settings",
    "load_msgstore_settings": "settings",
    "match_mailbox": "mailbox_pattern",
    "parse_hostport": "settings",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DELIMITER",
    "MAX_UID",
    "SYSTEM_FLAGS",
    "AppendResult",
    "BulkMailbox",
    "BulkMessage",
    "CannotDeleteInbox",
    "ChangeHub",
    "CopyResult",
    "EventKind",
    "ExpungeResult",
    "FlagMode",
    "InvalidName",
    "MailboxChanges",
    "MailboxExists",
    "MailboxHasChildren",
    "MailboxListing",
    "MailboxPattern",
    "MailboxStatus",
    "MessageRecord",
    "MessageStore",
    "MoveResult",
    "MsgstoreSettings",
    "NoSuchMailbox",
    "NoSuchMessage",
    "NoSuchSubscription",
    "NoSuchUser",
    "PatternSet",
    "SearchFilter",
    "SearchResult",
    "SelectInfo",
    "StoreBusy",
    "StoreError",
    "StoreEvent",
    "StoreResult",
    "Subscription",
    "SubscriptionClosed",
    "UidSet",
    "UserExists",
    "canonical_name",
    "legacy_preset",
    "load_msgstore_settings",
    "match_mailbox",
    "parse_hostport",
]
