"""Figures for `cpmsync daemon stats`: sync runs and bytes per discovery strategy."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from cpmsync.daemon.cache import SyncRunState

__all__ = ["TRACE_CSV_HEADER", "StrategyTotals", "totals_by_strategy", "write_trace_csv"]

TRACE_CSV_HEADER = ("t_s", "direction", "bytes")
"""The simulator's trace format (`cpmsync simulate trace FILE`, docs/energy.md)."""

_DIRECTION = {"out": "up", "in": "down"}  # daemon -> server is the uplink


@dataclass(frozen=True)
class StrategyTotals:
    strategy: str
    runs: int
    errors: int
    folders_touched: int
    bytes_in: int
    bytes_out: int
    wire_bytes_in: int
    wire_bytes_out: int

    @property
    def mean_wire_bytes(self) -> float:
        return (self.wire_bytes_in + self.wire_bytes_out) / self.runs if self.runs else 0.0


def totals_by_strategy(runs: Sequence[SyncRunState]) -> list[StrategyTotals]:
    """Sum the runs per strategy, sorted by strategy name."""
    acc: dict[str, list[int]] = {}
    for r in runs:
        t = acc.setdefault(r.strategy, [0] * 7)
        for i, v in enumerate(
            (
                1,
                1 if r.error else 0,
                r.folders_touched,
                r.bytes_in,
                r.bytes_out,
                r.wire_bytes_in,
                r.wire_bytes_out,
            )
        ):
            t[i] += v
    return [StrategyTotals(name, *vals) for name, vals in sorted(acc.items())]


def write_trace_csv(rows: Iterable[tuple[str, float, str, int]], out: TextIO) -> int:
    """Write `Cache.trace()` rows as the simulator's CSV (seconds from the first row); returns rows.

    The daemon records unix times per connection; the simulator wants one timeline of
    (t_s, up|down, bytes), so rows are sorted by time and made relative to the first.
    """
    ordered = sorted(rows, key=lambda r: r[1])
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TRACE_CSV_HEADER)
    t0 = ordered[0][1] if ordered else 0.0
    for _conn, t, direction, nbytes in ordered:
        w.writerow((f"{t - t0:.6f}", _DIRECTION.get(direction, direction), nbytes))
    return len(ordered)
