"""Sequence and UID sets (RFC 3501 `sequence-set`, RFC 7162 `known-uids`, VANISHED).

Ranges are kept as written so a parsed set serializes back byte-exact; `from_ints` gives the
compact form ("1:3,5,7:9") used for VANISHED and QRESYNC known-UIDs to keep radio bytes low.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import ImapProtocolError

__all__ = ["MAX_UID", "STAR", "SequenceSet"]

STAR = 0
"""The value standing for `*` inside a range (0 is never a valid sequence number or UID)."""
MAX_UID = 2**32 - 1

_NUM = r"(?:[1-9][0-9]{0,9}|\*)"
_SET_RE = re.compile(rf"{_NUM}(?::{_NUM})?(?:,{_NUM}(?::{_NUM})?)*\Z")


def _num(tok: str) -> int:
    if tok == "*":
        return STAR
    v = int(tok)
    if v > MAX_UID:
        raise ValueError(tok)
    return v


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """An IMAP sequence set; each range is (lo, hi) as written, a single number n is (n, n)."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse "1:3,5,*" (raises ImapProtocolError with the position of the first bad byte)."""
        s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
        if not _SET_RE.match(s):
            raise ImapProtocolError(
                "invalid sequence set", position=_first_bad(s), line=s.encode("utf-8", "replace")
            )
        ranges: list[tuple[int, int]] = []
        try:
            for part in s.split(","):
                lo, _, hi = part.partition(":")
                a = _num(lo)
                ranges.append((a, _num(hi) if hi else a))
        except ValueError:
            raise ImapProtocolError(
                "number in sequence set exceeds 2^32-1", position=0, line=s.encode("ascii", "replace")
            ) from None
        return cls(tuple(ranges))

    @classmethod
    def from_ints(cls, values: Iterable[int]) -> SequenceSet:
        """The compact, sorted, merged form of a collection of numbers (must not be empty)."""
        nums = sorted(set(values))
        if not nums:
            raise ValueError("a sequence set cannot be empty")
        if nums[0] < 1 or nums[-1] > MAX_UID:
            raise ValueError("sequence numbers must be in 1..2^32-1")
        ranges: list[tuple[int, int]] = []
        lo = hi = nums[0]
        for n in nums[1:]:
            if n == hi + 1:
                hi = n
            else:
                ranges.append((lo, hi))
                lo = hi = n
        ranges.append((lo, hi))
        return cls(tuple(ranges))

    @classmethod
    def single(cls, n: int) -> SequenceSet:
        return cls(((n, n),))

    @classmethod
    def range(cls, lo: int, hi: int = STAR) -> SequenceSet:
        """`lo:hi`; hi defaults to `*`."""
        return cls(((lo, hi),))

    @property
    def has_star(self) -> bool:
        return any(a == STAR or b == STAR for a, b in self.ranges)

    def _bounds(self, largest: int | None) -> Iterator[tuple[int, int]]:
        inf = MAX_UID + 1 if largest is None else largest
        for a, b in self.ranges:
            a = inf if a == STAR else a
            b = inf if b == STAR else b
            yield (a, b) if a <= b else (b, a)

    def contains(self, n: int, largest: int | None = None) -> bool:
        """Membership; `largest` is what `*` stands for (None: `*` is larger than any number).

        A plain loop, not `_bounds`: a first sync asks this once per fetched message."""
        inf = MAX_UID + 1 if largest is None else largest
        for a, b in self.ranges:
            if a == STAR:
                a = inf
            if b == STAR:
                b = inf
            if a <= n <= b or b <= n <= a:
                return True
        return False

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and self.contains(n)

    def iter_ints(self, largest: int) -> Iterator[int]:
        """Ascending, de-duplicated members, `*` standing for `largest`."""
        spans = sorted(self._bounds(largest))
        last = 0
        for a, b in spans:
            a = max(a, last + 1)
            if a <= b:
                yield from range(a, b + 1)
                last = b

    def __str__(self) -> str:
        return ",".join(
            (
                ("*" if a == STAR else str(a))
                if a == b
                else f"{'*' if a == STAR else a}:{'*' if b == STAR else b}"
            )
            for a, b in self.ranges
        )

    def to_bytes(self) -> bytes:
        return str(self).encode("ascii")


def _first_bad(s: str) -> int:
    """Best-effort position of the first byte that breaks the grammar (linear, attacker-safe)."""
    for i, c in enumerate(s):
        if c not in "0123456789:,*":
            return i
    return len(s)
