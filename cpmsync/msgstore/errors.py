"""Exceptions of the storage layer, each with the IMAP response code the server should send.

The server maps a `StoreError` to `NO [code] message`; the message never contains message data.
"""

from __future__ import annotations

__all__ = [
    "CannotDeleteInbox",
    "InvalidName",
    "MailboxExists",
    "MailboxHasChildren",
    "NoSuchMailbox",
    "NoSuchMessage",
    "NoSuchSubscription",
    "NoSuchUser",
    "StoreBusy",
    "StoreError",
    "UserExists",
]


class StoreError(Exception):
    """Base class; `code` is the RFC 5530 response code suggested for the tagged NO."""

    code: str = "SERVERBUG"


class NoSuchUser(StoreError):
    code = "AUTHENTICATIONFAILED"


class UserExists(StoreError):
    code = "ALREADYEXISTS"


class InvalidName(StoreError):
    code = "CANNOT"


class NoSuchMailbox(StoreError):
    code = "NONEXISTENT"


class MailboxExists(StoreError):
    code = "ALREADYEXISTS"


class MailboxHasChildren(StoreError):
    code = "INUSE"


class CannotDeleteInbox(StoreError):
    code = "CANNOT"


class NoSuchMessage(StoreError):
    code = "NONEXISTENT"


class NoSuchSubscription(StoreError):
    code = "NONEXISTENT"


class StoreBusy(StoreError):
    """The database stayed locked longer than the busy timeout."""

    code = "UNAVAILABLE"
