"""Figures for `cpmsync daemon stats`: sync runs and bytes per discovery strategy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cpmsync.daemon.cache import SyncRunState

__all__ = ["StrategyTotals", "totals_by_strategy"]


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
