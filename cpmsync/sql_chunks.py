"""IN (...) lists cut to a length every backend takes: the daemon's cache and msgstore's store both
ask for rows by name or id in bulk, and SQLite limits bound variables (PostgreSQL's plans grow)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST_MAX = 500
"""Items per IN (...) list."""


def in_chunks(seq: Sequence[T], n: int = IN_LIST_MAX) -> Iterator[Sequence[T]]:
    """Consecutive slices of `seq`, each at most `n` long."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
