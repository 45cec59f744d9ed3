"""Values the store hands to the server: plain frozen dataclasses, no database objects leak out."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "MAX_UID",
    "SYSTEM_FLAGS",
    "AppendResult",
    "CopyResult",
    "ExpungeResult",
    "FlagMode",
    "MailboxChanges",
    "MailboxListing",
    "MailboxStatus",
    "MessageRecord",
    "MoveResult",
    "SearchFilter",
    "SearchResult",
    "SelectInfo",
    "StoreResult",
    "UidSet",
]

MAX_UID = 4_294_967_295  # RFC 3501 nz-number is 32 bits

# The flags RFC 3501 2.3.2 defines (\Recent is session state, never stored).
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


class FlagMode(enum.Enum):
    """STORE FLAGS / +FLAGS / -FLAGS."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class UidSet:
    """Sorted, merged, closed UID ranges. The server resolves `*` and sequence numbers first."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> UidSet:
        norm = sorted((min(a, b), max(a, b)) for a, b in ranges)
        merged: list[tuple[int, int]] = []
        for lo, hi in norm:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return cls(tuple(merged))

    @classmethod
    def from_uids(cls, uids: Iterable[int]) -> UidSet:
        return cls.from_ranges((u, u) for u in uids)

    @classmethod
    def all(cls) -> UidSet:
        return cls(((1, MAX_UID),))

    @property
    def is_all(self) -> bool:
        return self.ranges == ((1, MAX_UID),)

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect.bisect_right(self.ranges, (uid, MAX_UID + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= uid <= self.ranges[i][1]

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def iter_uids(self) -> Iterator[int]:
        """Every UID in the set (do not call on `all()`)."""
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __str__(self) -> str:
        return ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in self.ranges)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as FETCH needs it; `data` only when asked for."""

    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: datetime  # aware, in the zone it was appended with
    size: int
    emailid: str
    threadid: str | None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """STATUS items (RFC 3501, 7162 HIGHESTMODSEQ, 8438 SIZE, 8474 MAILBOXID).

    `highestmodseq` is what IMAP shows: 0 for a NOMODSEQ mailbox (RFC 7162 3.1.2.2).
    """

    id: int
    name: str
    messages: int
    recent: int
    uidnext: int
    uidvalidity: int
    unseen: int
    highestmodseq: int
    size: int
    mailboxid: str
    nomodseq: bool


@dataclass(frozen=True, slots=True)
class MailboxListing:
    """One LIST line's worth of facts; the server turns them into attributes."""

    name: str
    id: int | None  # None when nonexistent
    mailboxid: str | None
    has_children: bool
    has_subscribed_children: bool
    subscribed: bool
    nonexistent: bool = False  # deleted after CHANGEDSINCE m, or subscribed-only name
    old_name: str | None = None  # renamed after CHANGEDSINCE m: the name at m (OLDNAME)
    highestmodseq: int = 0
    nomodseq: bool = False
    status: MailboxStatus | None = None  # filled when asked `with_status` (LIST-STATUS)


@dataclass(frozen=True, slots=True)
class SelectInfo:
    """Everything SELECT/EXAMINE answers with, read in one transaction."""

    status: MailboxStatus
    uids: list[int]
    keywords: list[str]  # keywords in use in this mailbox, for FLAGS / PERMANENTFLAGS
    recent_uids: list[int]
    first_unseen: int | None = None  # sequence number of the first message without \Seen ([UNSEEN n])

    @property
    def id(self) -> int:
        return self.status.id


@dataclass(frozen=True, slots=True)
class AppendResult:
    """APPENDUID data (RFC 4315)."""

    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    """`updated`: matched messages that passed UNCHANGEDSINCE (new flags/modseq);
    `modified`: those that failed it, for [MODIFIED] (RFC 7162 3.1.3)."""

    updated: list[MessageRecord]
    changed_uids: list[int]
    modified: UidSet
    modseq: int | None


@dataclass(frozen=True, slots=True)
class ExpungeResult:
    uids: list[int]
    modseq: int | None


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPYUID data (RFC 4315): src_uids[i] was copied to dst_uids[i]."""

    uidvalidity: int
    src_uids: list[int]
    dst_uids: list[int]
    modseq: int | None


@dataclass(frozen=True, slots=True)
class MoveResult:
    copy: CopyResult
    expunged: list[int]
    modseq: int | None  # the source mailbox's MODSEQ for the expunge


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """Since a MODSEQ: messages whose metadata changed (or are new) and UIDs expunged."""

    changed: list[MessageRecord]
    vanished: list[int]


@dataclass(slots=True)
class SearchFilter:
    """AND of the fields that are set. Dates compare the calendar day, ignoring time (RFC 3501 6.4.4)."""

    uids: UidSet | None = None
    flags_set: list[str] = field(default_factory=list)
    flags_unset: list[str] = field(default_factory=list)
    modseq_min: int | None = None
    before: date | None = None
    on: date | None = None
    since: date | None = None
    sent_before: date | None = None
    sent_on: date | None = None
    sent_since: date | None = None
    larger: int | None = None
    smaller: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchResult:
    uids: list[int]
    highest_modseq: int  # for the "(MODSEQ n)" of RFC 7162 3.1.5; 0 when no match
