"""LIST pattern matching (RFC 3501 6.3.8, RFC 5258 3): `*` crosses the hierarchy, `%` does not.

"INBOX" is case-insensitive (RFC 3501 5.1), so the first hierarchy level of a name that is INBOX
compares case-insensitively; every other character compares exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["MailboxPattern", "PatternSet", "canonical_name", "join_reference", "match_mailbox"]

_INBOX = "INBOX"


def canonical_name(name: str, delimiter: str = "/") -> str:
    """`inbox/x` -> `INBOX/x`: the one name INBOX has, whatever case the client used."""
    head, sep, rest = name.partition(delimiter)
    if head.upper() == _INBOX:
        return _INBOX + sep + rest
    return name


def join_reference(reference: str, pattern: str, delimiter: str = "/") -> str:
    """RFC 3501 6.3.8: the reference is prefixed to the pattern; a doubled delimiter collapses."""
    if not reference:
        return pattern
    if reference.endswith(delimiter) and pattern.startswith(delimiter):
        return reference + pattern[len(delimiter) :]
    return reference + pattern


@lru_cache(maxsize=256)
def _regex(pattern: str, delimiter: str) -> re.Pattern[str]:
    not_delim = "[^" + re.escape(delimiter) + "]*"
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(not_delim)
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _match_inbox(pattern: str, name: str, delimiter: str, fold: int) -> bool:
    """Wildcard match where the first `fold` characters of `name` compare case-insensitively."""
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(pattern):
            r = j == len(name)
        else:
            pc = pattern[i]
            if pc == "*":
                r = go(i + 1, j) or (j < len(name) and go(i, j + 1))
            elif pc == "%":
                r = go(i + 1, j) or (j < len(name) and name[j] != delimiter and go(i, j + 1))
            elif j < len(name):
                same = pc == name[j] or (j < fold and pc.upper() == name[j].upper())
                r = same and go(i + 1, j + 1)
            else:
                r = False
        memo[key] = r
        return r

    return go(0, 0)


class MailboxPattern:
    """One canonical LIST pattern (reference already joined)."""

    __slots__ = ("_regex", "delimiter", "pattern")

    def __init__(self, pattern: str, delimiter: str = "/") -> None:
        self.pattern = pattern
        self.delimiter = delimiter
        self._regex = _regex(pattern, delimiter)

    @property
    def literal_prefix(self) -> str:
        """The part before the first wildcard: every match starts with it (INBOX aside)."""
        m = re.search(r"[*%]", self.pattern)
        return self.pattern if m is None else self.pattern[: m.start()]

    def matches(self, name: str) -> bool:
        if self._regex.fullmatch(name):
            return True
        head = name.split(self.delimiter, 1)[0]
        if head.upper() == _INBOX:
            return _match_inbox(self.pattern, name, self.delimiter, len(head))
        return False


class PatternSet:
    """The union of several patterns (RFC 5258 pattern lists) under one reference."""

    __slots__ = ("patterns",)

    def __init__(self, reference: str, patterns: Iterable[str], delimiter: str = "/") -> None:
        self.patterns = [MailboxPattern(join_reference(reference, p, delimiter), delimiter) for p in patterns]

    @property
    def matches_everything(self) -> bool:
        return any(p.pattern == "*" for p in self.patterns)

    def matches(self, name: str) -> bool:
        return any(p.matches(name) for p in self.patterns)


def match_mailbox(reference: str, pattern: str, name: str, delimiter: str = "/") -> bool:
    """Does `name` match LIST `reference` `pattern`?"""
    return MailboxPattern(join_reference(reference, pattern, delimiter), delimiter).matches(name)
