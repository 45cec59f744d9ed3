"""The garbage collector's settings for the daemon's process.

A sync turns every response line into short-lived objects (tokens, typed responses, rows). With
CPython's default gen-0 threshold of 700, a first sync ran a collection every few folders, and
every full collection walked all the objects the imports had created: about a tenth of the CPU
of a 1,000-folder first sync (bench_daemon_vs_mbsync.py prints both with `--gc both`).
Freezing what start-up created takes it out of every later collection; a gen-0 threshold of
10,000 objects costs at most a few MB and still collects cycles within a sync's batch.

Start-up itself runs with no collector at all (`service_start`): the imports allocate some 140,000
objects that all live as long as the process, and the default thresholds walked them over 200
times for the 1,000 cyclic ones they found, an eighth of the imports' CPU
(bench_daemon_startup.py). Those import-time cycles (classes the dataclass decorator replaced,
about 0.4 MB) are frozen with the rest instead, the pattern gc.freeze's documentation gives.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SERVICE_THRESHOLDS", "service_start", "tune_for_service"]

SERVICE_THRESHOLDS = (10_000, 100, 10)
"""gen 0 every 10,000 net allocations; gen 1 every 100 of those, gen 2 every 1,000 (CPython's own
rule still skips a full collection until the long-lived heap has grown by a quarter). A gen-1
pass every 10 walked the rows of a whole cache batch still waiting for its commit: 4 passes,
~50 ms of a 1,000 x 20 first sync's 1.8 s; every 100 there are none, and gen 0 still takes the
cycles a sync makes."""


def tune_for_service() -> None:
    """Call once, after the imports and the configuration, before the event loop starts."""
    gc.freeze()
    gc.set_threshold(*SERVICE_THRESHOLDS)


@contextmanager
def service_start() -> Iterator[None]:
    """Run the service's imports and configuration inside: no collection until it ends, then
    `tune_for_service` (frozen before the collector is back on, so no pass ever walks what
    start-up made). A failed start-up leaves the collector as it found it, untuned."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        tune_for_service()
    finally:
        if enabled:
            gc.enable()
