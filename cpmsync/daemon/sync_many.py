"""Pipelined sync of many folders: a first sync, or a catch-up of many changed folders, keeps the
link full instead of waiting a round trip or three per folder (70 ms each on LTE).

Pass 1 streams, folder after folder, EXAMINE and the UID FETCH of the new messages through one
pipeline, with an UNSELECT between folders so that news about one folder is never taken for the
next one's data. Pass 2 does the same for the few folders whose new messages need a follow-up
FETCH (longer previews, raw addresses, bodies). A folder the pipeline cannot settle (UIDVALIDITY
changed, a message below the known UIDs, a known folder without QRESYNC, an unexpected NO) is
synced alone by `sync_folder`, exactly as before. Finished folders are committed COMMIT_FOLDERS at
a time, one cache transaction each, while answers keep arriving: a cut loses only folders not yet
committed, which stay pending above the watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from cpmsync.daemon.cache import Cache, FolderState
from cpmsync.daemon.discovery import FolderListing
from cpmsync.daemon.imap_client import CommandResult, ImapClient
from cpmsync.daemon.settings import ImapSettings
from cpmsync.daemon.sync import (
    FolderChanges,
    FolderPlan,
    Followup,
    NewMessages,
    apply_changes_many,
    followups,
    new_fetch,
    plan_folder,
    read_followup,
    read_new,
    read_select,
    selection_gone,
    sync_folder,
    tidy_flags,
)
from cpmsync.imap import Command, FetchCommand, SelectCommand, SequenceSet
from cpmsync.imap.seqset import STAR
from cpmsync.logs import kv

__all__ = ["COMMIT_FOLDERS", "SyncManyResult", "sync_many"]

log = logging.getLogger("cpmsync.daemon.sync")

COMMIT_FOLDERS = 100
"""Folders per cache transaction: one commit (and one publisher wake-up) per this many."""

PROBE_FOLDERS = 8
"""Folders of a long sync sent first on their own, to learn how the server answers (see run)."""

_State = Literal["pass1", "followup", "done", "alone", "gone"]
_Kind = Literal["unselect", "select", "fetch", "reselect", "followup"]


@dataclass
class _Job:
    plan: FolderPlan
    ch: FolderChanges
    tail: SequenceSet | None  # the UIDs of new messages to fetch in pass 1 (None: nothing new)
    above: int
    state: _State = "pass1"
    select: CommandResult | None = None
    fetch: tuple[object, CommandResult] | None = None
    due: int = 0  # answers of the current pass still to come
    nm: NewMessages = field(default_factory=NewMessages)
    follow: list[Followup] = field(default_factory=list)


@dataclass
class SyncManyResult:
    synced: int = 0  # folders committed (or found gone)
    pending: int = 0  # folders left because the daemon is stopping


def _new_messages_possible(plan: FolderPlan, listing: FolderListing | None) -> bool:
    """False when the discovery's UIDNEXT is the cached one: no FETCH of new messages needed."""
    st = listing.status if listing is not None else None
    cached = plan.cached
    return not (
        st is not None and st.uidnext is not None and cached is not None and cached.uidnext == st.uidnext
    )


def _job(
    imap: ImapClient, cache: Cache, name: str, listing: FolderListing | None, cached: FolderState | None
) -> _Job:
    flags_now = cache.message_flags(name) if cached is not None else {}
    plan = plan_folder(imap, name, cached, flags_now)
    ch = FolderChanges(
        name,
        delimiter=listing.delimiter if listing else None,
        attributes=listing.attributes if listing else None,
    )
    if plan.use_qresync:
        above = plan.known[-1]
        tail = SequenceSet(((above + 1, STAR),)) if _new_messages_possible(plan, listing) else None
        return _Job(plan, ch, tail, above)
    if not plan.known:
        return _Job(plan, ch, SequenceSet(((1, STAR),)), 0)
    return _Job(plan, ch, None, 0, state="alone")  # CONDSTORE or full compare: sync_folder's way


class _Runner:
    def __init__(
        self, imap: ImapClient, cache: Cache, settings: ImapSettings, stop: asyncio.Event, *, close: bool
    ) -> None:
        self.imap, self.cache, self.settings, self.stop = imap, cache, settings, stop
        self.close = close
        self.ready: list[FolderChanges] = []
        self.result = SyncManyResult()

    # ---- the command streams -----------------------------------------------------------------

    def _stream(self, jobs: list[_Job], order: deque[tuple[_Job, _Kind, object]]) -> Iterator[Command]:
        """Commands for `jobs`, produced as the window opens (later FETCHes see what earlier
        answers taught, e.g. to fetch raw addresses); `order` says what each answer is. A job in
        state "followup" gets pass 2's commands, any other pass 1's: the probe's follow-ups ride
        in the same stream as the rest of pass 1, not one round trip on their own."""
        unselect = self.imap.unselect_command()
        selected = self.imap.selected is not None
        for job in jobs:
            if self.stop.is_set():
                return
            if selected:
                order.append((job, "unselect", None))
                yield unselect
            plan = job.plan
            followup = job.state == "followup"
            if followup:
                cmd = SelectCommand(
                    "", plan.name, readonly=True, condstore=plan.condstore and not plan.qresync
                )
            else:
                cmd = plan.cmd
            job.due = 1 + (len(job.follow) if followup else 0)
            order.append((job, "reselect" if followup else "select", cmd))
            yield cmd
            selected = True
            if followup:
                for f in job.follow:
                    order.append((job, "followup", f))
                    yield f.cmd
            elif job.tail is not None:
                fetch = new_fetch(
                    self.settings, job.tail, plan.condstore, raw_addresses=self.imap.fetch_raw_addresses
                )
                order.append((job, "fetch", fetch))
                yield fetch
        if self.close and selected and jobs:
            # Leave nothing selected, as the caller would with one more round trip after the
            # pipeline; a later pass or a folder synced alone starts with its own EXAMINE.
            order.append((jobs[-1], "unselect", None))
            yield unselect

    async def _run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        order: deque[tuple[_Job, _Kind, object]] = deque()
        window = self.settings.sync_window
        stream = self._stream(jobs, order)
        async with contextlib.aclosing(self.imap.pipeline(stream, window=window)) as answers:
            async for res in answers:
                job, kind, what = order.popleft()
                if kind == "unselect":
                    continue
                job.due -= 1
                if kind == "select":
                    job.select = res
                    if job.tail is None:
                        self._settle(job)
                elif kind == "reselect":
                    job.select = res
                    self._check_again(job)
                elif kind == "fetch":
                    job.fetch = (what, res)
                    self._settle(job)
                elif job.state == "followup":
                    assert isinstance(what, Followup)
                    if res.status.status != "OK":
                        job.state = "alone"
                    else:
                        read_followup(self.imap, self.settings, what, res.responses, job.nm, job.plan.name)
                if kind in ("reselect", "followup") and job.state == "followup" and job.due == 0:
                    self._done(job)

    # ---- reading the answers -----------------------------------------------------------------

    def _settle(self, job: _Job) -> None:
        """Pass 1 of one folder is answered: what changed, or why it needs more."""
        assert job.select is not None
        plan, ch, res = job.plan, job.ch, job.select
        if res.status.status != "OK":
            job.state = "gone" if selection_gone(res) else "alone"
            return
        _nomodseq, qfetch = read_select(plan, ch, res.responses)
        cached = plan.cached
        if cached and cached.uidvalidity and ch.uidvalidity and cached.uidvalidity != ch.uidvalidity:
            job.state = "alone"  # UIDVALIDITY changed: sync_folder resyncs the whole folder
            return
        if ch.exists == 0:
            ch.vanished, ch.method = set(plan.known), "empty"
            self._done(job)
            return
        expected = 0
        if plan.use_qresync:
            ch.method = "qresync"
            for uid, fd in qfetch.items():
                if uid in plan.flags_now:
                    if fd.flags is not None:
                        ch.flags[uid] = (tidy_flags(fd.flags), fd.modseq)
                elif uid < job.above:
                    job.state = "alone"  # a message below the known UIDs that the cache lacks
                    return
            expected = len(plan.known) - len(ch.vanished)
        else:
            ch.method = "full"
        if job.fetch is not None:
            cmd, fres = job.fetch
            if fres.status.status != "OK":
                job.state = "alone"
                return
            assert isinstance(cmd, FetchCommand)
            nm = read_new(self.imap, self.settings, cmd, fres.responses, job.above, plan.name)
            for uid in [u for u in nm.out if u in plan.flags_now]:
                del nm.out[uid]
            job.nm = nm
            expected += len(nm.out)
        if plan.use_qresync and (ch.exists is None or ch.exists > expected):
            job.state = "alone"  # more messages than accounted for: sync_folder looks again
            return
        job.follow = followups(self.settings, job.nm)
        if job.follow:
            job.state = "followup"
            return
        self._done(job)

    def _check_again(self, job: _Job) -> None:
        """Pass 2's EXAMINE: the same mailbox (UIDVALIDITY) as in pass 1, or sync it alone."""
        assert job.select is not None
        if job.select.status.status != "OK":
            job.state = "alone"
            return
        again = FolderChanges(job.ch.name)
        read_select(job.plan, again, job.select.responses)
        if again.uidvalidity != job.ch.uidvalidity:
            job.state = "alone"

    def _done(self, job: _Job) -> None:
        job.state = "done"
        job.ch.new = job.nm.messages()
        self.ready.append(job.ch)
        if len(self.ready) >= COMMIT_FOLDERS:
            self.commit()

    def commit(self) -> None:
        if self.ready:
            apply_changes_many(self.cache, self.ready)
            self.result.synced += len(self.ready)
            self.ready = []

    # ---- the whole run -----------------------------------------------------------------------

    async def run(self, todo: dict[str, FolderListing | None]) -> SyncManyResult:
        cached = self.cache.folders(todo)
        jobs = [_job(self.imap, self.cache, n, listing, cached.get(n)) for n, listing in todo.items()]
        try:
            first = [j for j in jobs if j.state == "pass1"]
            if not self.imap.fetch_raw_addresses and len(first) > PROBE_FOLDERS:
                # One round trip to learn whether the server garbles addresses (Dovecot: `tel:`
                # senders) before the rest goes out: their FETCH then brings the raw From/To,
                # not a second pass over hundreds of folders.
                probe = first[:PROBE_FOLDERS]
                await self._run(probe)
                first = [j for j in probe if j.state == "followup"] + first[PROBE_FOLDERS:]
            await self._run(first)
            await self._run([j for j in jobs if j.state == "followup"])
        finally:
            self.commit()  # what is complete is kept, even when the link was cut
        for job in jobs:
            if job.state == "gone":
                if self.cache.delete_folder(job.plan.name):
                    log.info("folder gone on the server", extra=kv(folder=job.plan.name))
                self.result.synced += 1
        for job in jobs:
            if job.state in ("done", "gone"):
                continue
            if self.stop.is_set():
                self.result.pending += 1
                continue
            # Unsent (stopping), or the pipeline could not settle it: the one-folder way.
            await sync_folder(
                self.imap,
                self.cache,
                job.plan.name,
                self.settings,
                delimiter=job.ch.delimiter,
                attributes=job.ch.attributes,
            )
            self.result.synced += 1
        log.debug(
            "folders synced in a pipeline",
            extra=kv(folders=len(jobs), alone=sum(j.state == "alone" for j in jobs)),
        )
        return self.result


async def sync_many(
    imap: ImapClient,
    cache: Cache,
    todo: dict[str, FolderListing | None],
    settings: ImapSettings,
    *,
    stop: asyncio.Event,
    close: bool = False,
) -> SyncManyResult:
    """Sync these folders (name -> its listing, if the discovery had one) over one pipeline;
    `close`: end each pass with UNSELECT in the same pipeline (no round trip of its own after)."""
    return await _Runner(imap, cache, settings, stop, close=close).run(todo)
