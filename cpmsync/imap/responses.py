"""Typed server responses (RFC 3501 §7 and the extensions cpmsync speaks).

Values only; `response_parser` reads them from bytes and `response_writer` writes them back.
Dict-valued items keep wire order so a parsed response serializes byte-exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from ._lexer import RawValue
from .seqset import SequenceSet

__all__ = [
    "Address",
    "AppendUid",
    "CapabilityData",
    "CodeValue",
    "ContinuationRequest",
    "CopyUid",
    "ESearchData",
    "EnabledData",
    "Envelope",
    "ExistsData",
    "ExpungeData",
    "FetchData",
    "FetchValue",
    "FlagsData",
    "IdData",
    "ListData",
    "NamespaceData",
    "NamespaceDesc",
    "RawValue",
    "RecentData",
    "Response",
    "ResponseCode",
    "SearchData",
    "StatusData",
    "StatusResponse",
    "UnknownResponse",
    "VanishedData",
]


@dataclass(frozen=True, slots=True)
class AppendUid:
    """UIDPLUS `[APPENDUID uidvalidity uid-set]`."""

    uidvalidity: int
    uids: SequenceSet


@dataclass(frozen=True, slots=True)
class CopyUid:
    """UIDPLUS `[COPYUID uidvalidity source-uids dest-uids]` (also sent for MOVE)."""

    uidvalidity: int
    source: SequenceSet
    dest: SequenceSet


CodeValue: TypeAlias = int | str | tuple[str, ...] | SequenceSet | AppendUid | CopyUid | None


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """`[NAME value]` in a status response; unknown codes keep their text as a str value."""

    name: str
    value: CodeValue = None


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """OK/NO/BAD/PREAUTH/BYE, tagged (tag set) or untagged (tag None)."""

    tag: str | None
    status: str
    code: ResponseCode | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """`+ text`: the server waits for a literal, IDLE's DONE or a SASL response."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class CapabilityData:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnabledData:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdData:
    """RFC 2971 ID response; params None for `* ID NIL`."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class NamespaceDesc:
    prefix: str
    delimiter: str | None
    extensions: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceData:
    personal: tuple[NamespaceDesc, ...] | None
    other: tuple[NamespaceDesc, ...] | None
    shared: tuple[NamespaceDesc, ...] | None


@dataclass(frozen=True, slots=True)
class ListData:
    """`* LIST` / `* LSUB`; childinfo and oldname are the RFC 5258 extended data items."""

    attributes: tuple[str, ...]
    delimiter: str | None
    name: str
    childinfo: tuple[str, ...] | None = None
    oldname: str | None = None
    extra: tuple[tuple[str, RawValue], ...] = ()
    lsub: bool = False

    @property
    def nonexistent(self) -> bool:
        """RFC 5258 \\NonExistent: the mailbox is gone (a NOTIFY deletion, a CHANGEDSINCE listing)."""
        return any(a.upper() == "\\NONEXISTENT" for a in self.attributes)


@dataclass(frozen=True, slots=True)
class StatusData:
    """`* STATUS mailbox (ITEM n ...)`; items in wire order, MAILBOXID as str."""

    mailbox: str
    items: dict[str, int | str]

    def _int(self, key: str) -> int | None:
        v = self.items.get(key)
        return v if isinstance(v, int) else None

    @property
    def messages(self) -> int | None:
        return self._int("MESSAGES")

    @property
    def recent(self) -> int | None:
        return self._int("RECENT")

    @property
    def uidnext(self) -> int | None:
        return self._int("UIDNEXT")

    @property
    def uidvalidity(self) -> int | None:
        return self._int("UIDVALIDITY")

    @property
    def unseen(self) -> int | None:
        return self._int("UNSEEN")

    @property
    def highestmodseq(self) -> int | None:
        return self._int("HIGHESTMODSEQ")

    @property
    def size(self) -> int | None:
        return self._int("SIZE")

    @property
    def mailboxid(self) -> str | None:
        v = self.items.get("MAILBOXID")
        return v if isinstance(v, str) else None


@dataclass(frozen=True, slots=True)
class FlagsData:
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExistsData:
    count: int


@dataclass(frozen=True, slots=True)
class RecentData:
    count: int


@dataclass(frozen=True, slots=True)
class ExpungeData:
    seq: int


@dataclass(frozen=True, slots=True)
class VanishedData:
    """RFC 7162 `* VANISHED [(EARLIER)] uid-set`."""

    uids: SequenceSet
    earlier: bool = False


@dataclass(frozen=True, slots=True)
class Address:
    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    date: str | None
    subject: str | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: str | None
    message_id: str | None


FetchValue: TypeAlias = int | tuple[str, ...] | datetime | Envelope | bytes | RawValue | None


@dataclass(frozen=True, slots=True)
class FetchData:
    """`* n FETCH (...)`; keys upper-case in wire order (see the API note for value types)."""

    seq: int
    items: dict[str, FetchValue] = field(default_factory=dict)

    @property
    def uid(self) -> int | None:
        v = self.items.get("UID")
        return v if isinstance(v, int) else None

    @property
    def modseq(self) -> int | None:
        v = self.items.get("MODSEQ")
        return v if isinstance(v, int) else None

    @property
    def size(self) -> int | None:
        v = self.items.get("RFC822.SIZE")
        return v if isinstance(v, int) else None

    @property
    def flags(self) -> tuple[str, ...] | None:
        v = self.items.get("FLAGS")
        return v if isinstance(v, tuple) else None

    @property
    def internaldate(self) -> datetime | None:
        v = self.items.get("INTERNALDATE")
        return v if isinstance(v, datetime) else None

    @property
    def envelope(self) -> Envelope | None:
        v = self.items.get("ENVELOPE")
        return v if isinstance(v, Envelope) else None

    def body(self, section: str = "", origin: int | None = None) -> bytes | None:
        """The BODY[section]<origin> bytes, e.g. body("HEADER.FIELDS (FROM)")."""
        key = f"BODY[{section.upper()}]" + (f"<{origin}>" if origin is not None else "")
        v = self.items.get(key)
        return v if isinstance(v, bytes) else None


@dataclass(frozen=True, slots=True)
class SearchData:
    """`* SEARCH n...` with the RFC 7162 `(MODSEQ n)` suffix."""

    ids: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class ESearchData:
    """RFC 4731 `* ESEARCH [(TAG "t")] [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]`."""

    tag: str | None
    uid: bool
    items: dict[str, int | SequenceSet | RawValue]

    def _get_int(self, k: str) -> int | None:
        v = self.items.get(k)
        return v if isinstance(v, int) else None

    @property
    def min(self) -> int | None:
        return self._get_int("MIN")

    @property
    def max(self) -> int | None:
        return self._get_int("MAX")

    @property
    def count(self) -> int | None:
        return self._get_int("COUNT")

    @property
    def modseq(self) -> int | None:
        return self._get_int("MODSEQ")

    @property
    def all(self) -> SequenceSet | None:
        v = self.items.get("ALL")
        return v if isinstance(v, SequenceSet) else None


@dataclass(frozen=True, slots=True)
class UnknownResponse:
    """A response we do not type, kept as its exact wire bytes (CRLF and literals included)."""

    raw: bytes


Response: TypeAlias = (
    StatusResponse
    | ContinuationRequest
    | CapabilityData
    | EnabledData
    | IdData
    | NamespaceData
    | ListData
    | StatusData
    | FlagsData
    | ExistsData
    | RecentData
    | ExpungeData
    | VanishedData
    | FetchData
    | SearchData
    | ESearchData
    | UnknownResponse
)
