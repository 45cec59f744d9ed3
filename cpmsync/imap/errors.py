"""The codec's one exception family: every malformed input surfaces as an ImapProtocolError.

Callers catch one base class; the subclasses let a server choose BAD vs NO without parsing text.
"""

from __future__ import annotations

__all__ = [
    "BadCommandError",
    "ImapLimitError",
    "ImapProtocolError",
    "InvalidMailboxNameError",
    "UnknownCommandError",
]

_MAX_LINE_IN_ERROR = 1024


class ImapProtocolError(Exception):
    """Malformed IMAP data. `position` is a byte offset into `line` (None if not known)."""

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        line: bytes = b"",
        tag: str | None = None,
    ) -> None:
        self.message = message
        self.position = position
        self.line = bytes(line[:_MAX_LINE_IN_ERROR])
        self.tag = tag
        where = f" at byte {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


class ImapLimitError(ImapProtocolError):
    """A line, literal or message exceeded a configured size limit."""


class _CommandError(ImapProtocolError):
    """An error about one command line: carries the command's name (upper case) too."""

    def __init__(
        self,
        message: str,
        *,
        command: str,
        position: int | None = None,
        line: bytes = b"",
        tag: str | None = None,
    ) -> None:
        super().__init__(message, position=position, line=line, tag=tag)
        self.command = command


class UnknownCommandError(_CommandError):
    """The command name is not one we implement; the server answers `tag BAD`."""


class BadCommandError(_CommandError):
    """A known command with bad arguments; the server answers `tag BAD <message>`."""


class InvalidMailboxNameError(BadCommandError):
    """Well-formed arguments, but a mailbox name that is not valid modified UTF-7 (`a&'b`): the
    server answers `tag NO [CANNOT]` as Dovecot does, since no such mailbox can exist; not BAD."""
