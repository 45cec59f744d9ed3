"""One sync run over a logged-in connection: discovery, then each changed folder, then the watermark.

Each run is recorded (strategy, bytes at the IMAP layer and on the wire, folders touched, error)
for `cpmsync daemon stats`; the wire trace goes to the cache when tracing is on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cpmsync.daemon.cache import Cache, FolderState
from cpmsync.daemon.discovery import (
    Discovery,
    FolderListing,
    choose_strategy,
    discover,
    list_names,
    renamed_by_uidvalidity,
)
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.imap_client import ByteCounters, ImapClient
from cpmsync.daemon.renames import apply_renames
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync_many import sync_many
from cpmsync.imap import StatusData
from cpmsync.logs import kv

__all__ = ["RunResult", "SyncEngine"]

log = logging.getLogger("cpmsync.daemon.sync")


@dataclass
class RunResult:
    strategy: str
    folders: int
    bytes: ByteCounters
    seconds: float
    pending: int = 0  # folders left unsynced because the daemon was stopping
    interrupted: bool = False  # stopped before the run finished (the watermark did not move)


def _moved(st: StatusData, f: FolderState) -> bool:
    pairs: tuple[tuple[int | None, int | None], ...] = (
        (st.messages, f.messages),
        (st.uidnext, f.uidnext),
        (st.unseen, f.unseen),
        (st.uidvalidity, f.uidvalidity),
    )
    return any(new is not None and new != old for new, old in pairs)


class SyncEngine:
    """Syncs the cache with the server over one connection; the session owns reconnects."""

    def __init__(
        self,
        imap: ImapClient,
        cache: Cache,
        settings: DaemonSettings,
        *,
        stop: asyncio.Event | None = None,
        forced_strategy: DiscoveryStrategy | None = None,
    ) -> None:
        self.imap = imap
        self.cache = cache
        self.settings = settings
        self.stop = stop or asyncio.Event()
        self.forced_strategy = forced_strategy
        self.last_strategy: DiscoveryStrategy | None = None

    def flush_trace(self) -> None:
        """Keep the connection's (time, direction, bytes) rows so far, when tracing is on."""
        if self.settings.trace.enabled:
            self.cache.add_trace(self.imap.conn_id, self.imap.take_trace())

    async def catch_up(self, *, names_check: bool = False, full: bool = True) -> RunResult:
        """Full discovery with the cheapest strategy, then sync every changed folder.

        `full=False` (the periodic polls): without CONDSTORE only folders whose STATUS moved are
        compared; the full UID/FLAGS pass runs at start and every names_list_interval_s.
        """
        strategy = choose_strategy(self.imap, self.cache, self.forced_strategy)
        self.last_strategy = strategy
        return await self._run(strategy, discovery=strategy, names_check=names_check, full=full)

    @property
    def condstore(self) -> bool:
        """MODSEQs available: every flag change is seen without a full compare."""
        return self.imap.has("CONDSTORE") or "QRESYNC" in self.imap.enabled

    async def sync_folders(
        self, names: Iterable[str], *, strategy: str = "notify", keep_selected: bool = False
    ) -> RunResult:
        """Sync exactly these folders (a NOTIFY/IDLE hint); the watermark is not raised past others."""
        return await self._run(strategy, only=list(dict.fromkeys(names)), keep_selected=keep_selected)

    async def _renames_unannounced(self, names: list[str]) -> int:
        """Before a hinted folder new to the cache is synced: was it a cached folder, renamed
        without a notice (Dovecot drops them under churn)? One pipelined STATUS of the new names,
        and one of the cached names with the same UIDVALIDITY only where there are some; the
        renames found are applied as the server's own would be (`renamed_by_uidvalidity`)."""
        known = self.cache.folders(names)  # the hinted ones only: this runs on every push sync
        new = [n for n in names if n not in known]
        if not new:
            return 0
        cached = self.cache.folders()  # a folder new to the cache is rare: now all of them
        if not any(f.uidvalidity for f in cached.values()):
            return 0
        items = ("UIDVALIDITY", "MAILBOXID") if self.imap.has("OBJECTID") else ("UIDVALIDITY",)
        window = self.settings.imap.status_window
        found = await self.imap.status_many(new, items, window=window)
        vs = {st.uidvalidity for st in found.values() if st is not None}
        olds = [n for n, f in cached.items() if f.uidvalidity in vs]
        if not olds:
            return 0
        there = await self.imap.status_many(olds, ("UIDVALIDITY",), window=window)
        gone = [n for n in olds if (st := there.get(n)) is None or st.uidvalidity != cached[n].uidvalidity]
        listings = [FolderListing(n, None, (), st) for n, st in found.items()]
        return apply_renames(self.cache, renamed_by_uidvalidity(cached, gone, listings))

    async def apply_names(self, listings: list[FolderListing]) -> list[str]:
        """Given a complete names LIST: drop folders that are gone, return names new to the cache
        (and those the listing left out though the server still has them: to sync)."""
        present = {x.name for x in listings if x.selectable}
        cached = set(self.cache.folders())
        gone, kept = await self._gone_or_kept(sorted(cached - present))
        for name in gone:
            if self.cache.delete_folder(name):
                log.info("folder deleted on the server", extra=kv(folder=name))
        return sorted((present - cached) | set(kept))

    async def _gone_or_kept(self, missing: list[str]) -> tuple[list[str], list[str]]:
        """Cached folders a complete listing left out: (gone, still there), by one pipelined
        STATUS of their names. Dovecot 2.3's list index can leave a live folder out of LIST for
        good (docs/peers.md, with the exchange); dropped, it was announced removed, and again
        added under new ids once listed, while an app had seen nothing change."""
        if not missing:
            return [], []
        found = await self.imap.status_many(
            missing, ("UIDVALIDITY",), window=self.settings.imap.status_window
        )
        kept = [n for n in missing if found.get(n) is not None]
        if kept:
            log.warning("the server's listing left out folders it still has", extra=kv(folders=kept[:10]))
        return [n for n in missing if found.get(n) is None], kept

    async def _add_nomodseq(self, d: Discovery, *, full: bool) -> None:
        """CR I.5: LIST-CHANGEDSINCE never lists a NOMODSEQ folder, so its changes are found here.

        The folders the cache knows as NOMODSEQ (HIGHESTMODSEQ 0 or none) get one pipelined
        STATUS; those whose counters moved are synced (a full UID/FLAGS compare). A flag change
        other than \\Seen moves no counter: on a names-check run (`full`) all of them are synced.
        """
        cached = self.cache.folders()
        names = [n for n, f in cached.items() if not f.highestmodseq and n not in d.changed]
        if not names:
            return
        status: dict[str, StatusData | None] = {}
        if not full:
            items = ("MESSAGES", "UIDNEXT", "UNSEEN", "UIDVALIDITY")
            status = await self.imap.status_many(names, items, window=self.settings.imap.status_window)
        for name in names:
            f = cached[name]
            st = None if full else status.get(name)
            if st is not None and not _moved(st, f):
                continue
            d.changed[name] = FolderListing(name, f.delimiter, f.attributes)
        log.debug("nomodseq folders checked", extra=kv(folders=len(names), full=full))

    async def _run(
        self,
        strategy: str,
        *,
        discovery: DiscoveryStrategy | None = None,
        only: list[str] | None = None,
        names_check: bool = False,
        keep_selected: bool = False,
        full: bool = True,
    ) -> RunResult:
        before = self.imap.counters.snapshot()
        t0 = time.monotonic()
        # A catch-up shows in `daemon stats` while it runs; a push sync is recorded once over.
        started = datetime.now(UTC)
        run_id = self.cache.start_run(strategy) if discovery is not None else None
        touched = 0
        pending = 0
        interrupted = False
        error: str | None = None
        try:
            if discovery is None:
                todo: dict[str, FolderListing | None] = dict.fromkeys(only or ())
                touched += await self._renames_unannounced(list(todo))
            else:
                d = await discover(
                    self.imap,
                    self.cache,
                    discovery,
                    status_window=self.settings.imap.status_window,
                    full=full,
                )
                # As a permutation: swaps and cycles in listing order left ghost folders.
                touched += apply_renames(self.cache, d.renamed)
                targets = {new for _old, new in d.renamed}
                gone, kept = await self._gone_or_kept([n for n in d.deleted if n not in targets])
                for name in gone:
                    if self.cache.delete_folder(name):
                        log.info("folder deleted on the server", extra=kv(folder=name))
                        touched += 1
                for name in kept:  # left out of the listing, so its changes too: synced now
                    d.changed.setdefault(name, FolderListing(name, None, ()))
                if discovery.incremental:
                    if names_check:
                        extra = await self.apply_names(await list_names(self.imap))
                        for name in extra:
                            d.changed.setdefault(name, FolderListing(name, None, ()))
                    await self._add_nomodseq(d, full=names_check)
                    # The watermark may pass a folder only once it is committed: pend them.
                    self.cache.begin_discovery(d.target_modseq, d.changed, complete=d.complete)
                # else: a complete listing compared with the cache finds an unsynced folder again
                # after a crash, so nothing is pended (pending N folders costs O(N) per commit); the
                # watermark moves to the target only after all of them are committed (below).
                todo = dict(d.changed)
                # Folders a crashed run left pending are synced too (they are behind the watermark).
                for name in self.cache.pending_folders():
                    todo.setdefault(name, None)
                log.info(
                    "discovery",
                    extra=kv(
                        strategy=strategy,
                        listed=d.listed,
                        changed=len(d.changed),
                        deleted=len(d.deleted),
                        full=full,
                    ),
                )
            if todo and not self.stop.is_set():
                done = await sync_many(
                    self.imap, self.cache, todo, self.settings.imap, stop=self.stop, close=not keep_selected
                )
                touched += done.synced
                pending = done.pending
            else:
                pending = len(todo)
            # Stopping: a catch-up that did not reach its watermark, or folders left, is unfinished.
            interrupted = pending > 0 or (discovery is not None and self.stop.is_set())
            if interrupted:
                error = "interrupted"
            if discovery is not None and not self.stop.is_set():
                if discovery.incremental:
                    self.cache.advance_watermark()
                else:
                    self.cache.begin_discovery(d.target_modseq, (), complete=True)
            if self.imap.selected is not None and not keep_selected:
                await self.imap.unselect()
        except asyncio.CancelledError:
            error = "interrupted"
            raise
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            used = self.imap.counters.since(before)
            counts = {
                "bytes_in": used.imap_in,
                "bytes_out": used.imap_out,
                "wire_bytes_in": used.wire_in,
                "wire_bytes_out": used.wire_out,
                "folders_touched": touched,
            }
            if run_id is None:
                self.cache.record_run(strategy, started, error=error, **counts)
            else:
                self.cache.finish_run(run_id, error=error, **counts)
            self.flush_trace()
        return RunResult(strategy, touched, used, time.monotonic() - t0, pending, interrupted)
