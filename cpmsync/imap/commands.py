"""Typed client commands (RFC 3501 and the extensions the msgstore serves).

Values only; `command_parser` reads them (server side) and `command_writer` writes them
(client side). Every command carries its tag; `uid=True` is the "UID "-prefixed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeAlias

from .seqset import SequenceSet

__all__ = [
    "AppendCommand",
    "AuthenticateCommand",
    "CapabilityCommand",
    "CheckCommand",
    "CloseCommand",
    "Command",
    "CompressCommand",
    "CopyCommand",
    "CreateCommand",
    "DeleteCommand",
    "EnableCommand",
    "ExpungeCommand",
    "FetchAtt",
    "FetchBody",
    "FetchCommand",
    "IdCommand",
    "IdleCommand",
    "ListCommand",
    "LoginCommand",
    "LogoutCommand",
    "LsubCommand",
    "MoveCommand",
    "NamespaceCommand",
    "NoopCommand",
    "NotifyCommand",
    "NotifyEvent",
    "NotifyGroup",
    "QresyncParams",
    "RenameCommand",
    "SearchArg",
    "SearchCommand",
    "SearchKey",
    "SelectCommand",
    "StartTlsCommand",
    "StatusCommand",
    "StoreCommand",
    "SubscribeCommand",
    "UnselectCommand",
    "UnsubscribeCommand",
]


@dataclass(frozen=True, slots=True)
class _TagOnly:
    """A command without arguments: its class says which (equality and hash include the class)."""

    tag: str


@dataclass(frozen=True, slots=True)
class _OnMailbox:
    """A command whose one argument is a mailbox name."""

    tag: str
    mailbox: str


class CapabilityCommand(_TagOnly):
    __slots__ = ()


class NoopCommand(_TagOnly):
    __slots__ = ()


class LogoutCommand(_TagOnly):
    __slots__ = ()


class StartTlsCommand(_TagOnly):
    __slots__ = ()


class NamespaceCommand(_TagOnly):
    __slots__ = ()


class CheckCommand(_TagOnly):
    __slots__ = ()


class CloseCommand(_TagOnly):
    __slots__ = ()


class UnselectCommand(_TagOnly):
    __slots__ = ()


class IdleCommand(_TagOnly):
    """RFC 2177; after "+ idling" the server reads one raw line (DONE) via expect_raw_line()."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class IdCommand:
    """RFC 2971; params None is `ID NIL`."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class LoginCommand:
    tag: str
    username: str
    password: str

    def __repr__(self) -> str:  # never leak a password into logs or test output
        return f"LoginCommand(tag={self.tag!r}, username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class AuthenticateCommand:
    """initial_response is the decoded SASL-IR (RFC 4959) bytes; b"" was sent as "="."""

    tag: str
    mechanism: str
    initial_response: bytes | None = None

    def __repr__(self) -> str:
        ir = None if self.initial_response is None else "***"
        return f"AuthenticateCommand(tag={self.tag!r}, mechanism={self.mechanism!r}, initial_response={ir})"


@dataclass(frozen=True, slots=True)
class EnableCommand:
    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """RFC 7162 `(QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))`."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class SelectCommand:
    """SELECT, or EXAMINE when readonly."""

    tag: str
    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QresyncParams | None = None


class CreateCommand(_OnMailbox):
    __slots__ = ()


class DeleteCommand(_OnMailbox):
    __slots__ = ()


class SubscribeCommand(_OnMailbox):
    __slots__ = ()


class UnsubscribeCommand(_OnMailbox):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RenameCommand:
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListCommand:
    """RFC 3501 LIST and RFC 5258 LIST-EXTENDED, with RFC 5819 RETURN (STATUS (...)) and the
    CR's Appendix I.6 selection option CHANGEDSINCE (kept in its own field)."""

    tag: str
    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    changedsince: int | None = None
    return_opts: tuple[str, ...] = ()
    return_status: tuple[str, ...] | None = None

    @property
    def is_extended(self) -> bool:
        return bool(
            self.selection
            or self.changedsince is not None
            or self.return_opts
            or self.return_status is not None
            or len(self.patterns) != 1
        )


@dataclass(frozen=True, slots=True)
class LsubCommand:
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class StatusCommand:
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendCommand:
    tag: str
    mailbox: str
    message: bytes
    flags: tuple[str, ...] = ()
    date_time: datetime | None = None

    def __repr__(self) -> str:  # message bodies never reach logs
        return (
            f"AppendCommand(tag={self.tag!r}, mailbox={self.mailbox!r}, message=<{len(self.message)} bytes>, "
            f"flags={self.flags!r}, date_time={self.date_time!r})"
        )


@dataclass(frozen=True, slots=True)
class ExpungeCommand:
    """EXPUNGE, or UID EXPUNGE (RFC 4315) when uids is set."""

    tag: str
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One search key. `op` is the upper-case key name, plus "SEQSET" (a bare sequence set) and
    "AND" (a parenthesised group). NOT has one SearchKey arg, OR two, AND any number."""

    op: str
    args: tuple[SearchArg, ...] = ()


SearchArg: TypeAlias = str | int | date | SequenceSet | SearchKey


@dataclass(frozen=True, slots=True)
class SearchCommand:
    """SEARCH / UID SEARCH; return_opts not None is the RFC 4731 ESEARCH form."""

    tag: str
    criteria: tuple[SearchKey, ...]
    uid: bool = False
    charset: str | None = None
    return_opts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class FetchBody:
    """BODY[section]<partial> / BODY.PEEK[...]; partial is (origin, count)."""

    peek: bool = False
    part: tuple[int, ...] = ()
    text: str = ""
    fields: tuple[str, ...] = ()
    partial: tuple[int, int] | None = None

    @property
    def section(self) -> str:
        s = ".".join(str(p) for p in self.part)
        if self.text:
            s = f"{s}.{self.text}" if s else self.text
        if self.text.startswith("HEADER.FIELDS"):
            s += " (" + " ".join(self.fields) + ")"
        return s

    @property
    def response_key(self) -> str:
        """The item name a server answers with, e.g. "BODY[HEADER]<0>" (FetchData.items key)."""
        return f"BODY[{self.section}]" + (f"<{self.partial[0]}>" if self.partial else "")


FetchAtt: TypeAlias = str | FetchBody


@dataclass(frozen=True, slots=True)
class FetchCommand:
    """FETCH / UID FETCH with the RFC 7162 modifiers (CHANGEDSINCE n [VANISHED])."""

    tag: str
    seqset: SequenceSet
    items: tuple[FetchAtt, ...]
    uid: bool = False
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class StoreCommand:
    """STORE / UID STORE; mode "+", "-" or "" (replace); RFC 7162 UNCHANGEDSINCE."""

    tag: str
    seqset: SequenceSet
    mode: str
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class CopyCommand:
    tag: str
    seqset: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class MoveCommand:
    tag: str
    seqset: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """A NOTIFY event; fetch_atts only for MessageNew."""

    name: str
    fetch_atts: tuple[FetchAtt, ...] | None = None


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """filter lower-case (selected, selected-delayed, personal, inboxes, subscribed, subtree,
    mailboxes); mailboxes only for subtree/mailboxes; events None means NONE."""

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[NotifyEvent, ...] | None = ()


@dataclass(frozen=True, slots=True)
class NotifyCommand:
    """RFC 5465; groups None is `NOTIFY NONE`."""

    tag: str
    groups: tuple[NotifyGroup, ...] | None
    status: bool = False


@dataclass(frozen=True, slots=True)
class CompressCommand:
    tag: str
    mechanism: str = "DEFLATE"


Command: TypeAlias = (
    CapabilityCommand
    | NoopCommand
    | LogoutCommand
    | StartTlsCommand
    | NamespaceCommand
    | CheckCommand
    | CloseCommand
    | UnselectCommand
    | IdleCommand
    | IdCommand
    | LoginCommand
    | AuthenticateCommand
    | EnableCommand
    | SelectCommand
    | CreateCommand
    | DeleteCommand
    | SubscribeCommand
    | UnsubscribeCommand
    | RenameCommand
    | ListCommand
    | LsubCommand
    | StatusCommand
    | AppendCommand
    | ExpungeCommand
    | SearchCommand
    | FetchCommand
    | StoreCommand
    | CopyCommand
    | MoveCommand
    | NotifyCommand
    | CompressCommand
)
