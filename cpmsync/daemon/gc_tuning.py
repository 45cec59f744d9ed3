"""The garbage collector's settings for the daemon's process.

A sync turns every response line into short-lived objects (tokens, typed responses, rows). With
CPython's default gen-0 threshold of 700, a first sync ran a collection every few folders, and
every full collection walked all the objects the imports had created: about a tenth of the CPU
of a 1,000-folder first sync (bench_daemon_vs_mbsync.py prints both with `--gc both`).
Freezing what start-up created takes it out of every later collection; a gen-0 threshold of
10,000 objects costs at most a few MB and still collects cycles within a sync's batch.
"""

from __future__ import annotations

import gc

__all__ = ["SERVICE_THRESHOLDS", "tune_for_service"]

SERVICE_THRESHOLDS = (10_000, 10, 10)
"""gen 0 every 10,000 net allocations; gen 1 every 10 of those, gen 2 every 100 (CPython's own
rule still skips a full collection until the long-lived heap has grown by a quarter)."""


def tune_for_service() -> None:
    """Call once, after the imports and the configuration, before the event loop starts."""
    gc.freeze()
    gc.set_threshold(*SERVICE_THRESHOLDS)
