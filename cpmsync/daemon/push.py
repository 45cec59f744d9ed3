"""Waiting for changes: NOTIFY + IDLE, else IDLE on one folder + discovery polls, else polls.

With NOTIFY (RFC 5465) the server names the folders that changed (STATUS / LIST / EXISTS /
FETCH / VANISHED), and exactly those are synced. A burst of notifications is coalesced into one
sync (debounce_ms): each radio wake costs energy. IDLE is re-issued every keepalive_s (NAT
timeouts; at most 29 minutes, RFC 2177 section 3).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cpmsync.daemon.imap_client import ImapClient, ImapError, PushEvent
from cpmsync.daemon.schedule import IDLE_MAX_S, HeartbeatLadder, Task, WakeSchedule
from cpmsync.daemon.sync_engine import SyncEngine
from cpmsync.event_wait import wait_event
from cpmsync.imap import (
    ExistsData,
    ExpungeData,
    FetchData,
    ListData,
    NotifyCommand,
    NotifyEvent,
    NotifyGroup,
    StatusData,
    VanishedData,
)
from cpmsync.logs import kv

if TYPE_CHECKING:
    from cpmsync.daemon.actions import ActionQueue

__all__ = ["Hints", "PushLoop", "hints_from", "push_mode"]

log = logging.getLogger("cpmsync.daemon.push")

_MESSAGE_EVENTS = (NotifyEvent("MessageNew"), NotifyEvent("MessageExpunge"), NotifyEvent("FlagChange"))

# `selected` first: without it RFC 5465 servers say nothing about the mailbox the daemon has open
# while it syncs it, and Dovecot 2.3 never reports those changes later either (no EXISTS, no
# STATUS after UNSELECT once any command has synced the mailbox): such a change was lost.
NOTIFY_SET = NotifyCommand(
    "",
    (
        NotifyGroup("selected", (), _MESSAGE_EVENTS),
        NotifyGroup(
            "personal",
            (),
            (*_MESSAGE_EVENTS, NotifyEvent("MailboxName")),
        ),
    ),
)


@dataclass
class Hints:
    """What unsolicited responses said: folders to sync, deleted folders, renames."""

    folders: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    mailbox_names: bool = False  # a MailboxName event (LIST) came

    def __bool__(self) -> bool:
        return bool(self.folders or self.deleted or self.renamed)


def hints_from(events: Iterable[PushEvent]) -> Hints:
    h = Hints()
    for ev in events:
        r = ev.response
        if isinstance(r, StatusData):
            h.folders.add(r.mailbox)
        elif isinstance(r, ListData):
            h.mailbox_names = True
            if r.nonexistent:
                h.deleted.add(r.name)
                h.folders.discard(r.name)
            elif r.oldname is not None:
                h.renamed.append((r.oldname, r.name))
                h.folders.add(r.name)
            else:
                h.folders.add(r.name)
        elif isinstance(r, ExistsData | ExpungeData | FetchData | VanishedData) and ev.selected:
            h.folders.add(ev.selected)
    return h


def push_mode(imap: ImapClient) -> str:
    if imap.has("NOTIFY") and imap.has("IDLE"):
        return "notify"
    if imap.has("IDLE"):
        return "idle"
    return "poll"


class PushLoop:
    """Runs until `engine.stop` is set; raises ImapError when the connection fails."""

    def __init__(
        self,
        engine: SyncEngine,
        *,
        actions: ActionQueue | None = None,
        handoff: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.actions = actions  # apps' actions: applied on this connection before each sync
        # The publisher's turn (Publisher.caught_up) before each IDLE: the events this wake
        # committed go out before the loop settles back into waiting, not after.
        self.handoff = handoff
        self._never = asyncio.Event()
        self.imap = engine.imap
        self.cfg = engine.settings.imap
        self.mode = push_mode(self.imap)
        hb = engine.settings.heartbeat
        self.reply_timeout_s = hb.reply_timeout_s
        self.network = hb.current_network()
        learned = engine.cache.heartbeat_state(self.network)
        self.ladder = HeartbeatLadder.restore(hb.ladder_settings(), learned)
        self.schedule = WakeSchedule.start(
            time.monotonic(),
            heartbeat_s=self._heartbeat_s(),
            names_s=self._names_interval(),
            poll_s=self._poll_interval(),
            poll_on_heartbeat=self.mode == "notify" and self.cfg.notify_check_on_heartbeat,
        )
        self.syncs = 0
        self.heartbeats = 0
        self.idle_folder_missing = False  # idle mode fell back to polls until the folder appears

    async def run(self) -> None:
        stop = self.engine.stop
        log.info(
            "waiting for changes",
            extra=kv(mode=self.mode, network=self.network, heartbeat_s=round(self.schedule.heartbeat_s)),
        )
        while not stop.is_set():
            events = self.imap.push.drain()
            if events:
                self.schedule.traffic(time.monotonic())
            hints = hints_from(events)
            if self.actions is not None and self.actions.pending():
                await self.actions.apply(self.imap, self.engine)  # before syncing: see actions.py
                self.schedule.traffic(time.monotonic())
            if hints:
                await self._sync(hints)
                self.schedule.traffic(time.monotonic())
            # Own-clock work that fell due rides on this wake, whatever caused it (schedule.py).
            for task in self.schedule.due(time.monotonic(), woke_anyway=True):
                if stop.is_set():
                    break
                await self._run_task(task)
                self.schedule.done(task, time.monotonic())
            if self.handoff is not None:
                await self.handoff()  # news arriving meanwhile is queued: checked just below
            if stop.is_set() or self.imap.push.waiting:
                continue
            deadline = self.schedule.next_wake()
            if self.actions is not None:
                due = self.actions.next_due()
                if due <= time.monotonic():
                    continue  # arrived while this wake was busy: it rides along
                self.actions.arrived.clear()
                deadline = min(deadline, due)
            await self._wait(deadline)

    def _poll_interval(self) -> float:
        """Seconds between discovery polls; infinite under NOTIFY unless configured."""
        if self.mode == "notify":
            return self.cfg.notify_poll_interval_s or math.inf
        return self.cfg.poll_interval_s

    def _names_interval(self) -> float:
        """Under NOTIFY the server reports deleted and renamed folders itself (MailboxName), so
        the periodic names-only LIST (a line per folder: 350 KB at 10,000 folders) runs only
        where a NOTIFY safety poll is configured; a reconnect still checks names once."""
        if self.mode == "notify" and not self.cfg.notify_poll_interval_s:
            return math.inf
        return self.cfg.names_list_interval_s

    def _heartbeat_s(self) -> float:
        """The ladder's interval, capped by [imap] keepalive_s (the longest a user allows)."""
        return min(self.ladder.interval(time.time()), self.cfg.keepalive_s, IDLE_MAX_S)

    async def _run_task(self, task: Task) -> None:
        if task is Task.POLL:
            await self.engine.catch_up(full=False)
        elif task is Task.NAMES:
            await self._names()

    def _heartbeat_result(self, idle_s: float, *, alive: bool) -> None:
        """Teach the ladder what this heartbeat showed; keep it per network (the cache)."""
        self.heartbeats += 1
        if alive:
            self.ladder.survived(idle_s, time.time())
        else:
            self.ladder.lost(idle_s, time.time())
            log.info(
                "connection found dead at a heartbeat",
                extra=kv(idle_s=round(idle_s, 1), network=self.network, next_s=round(self._heartbeat_s())),
            )
        self.engine.cache.save_heartbeat(self.network, self.ladder.state)
        self.schedule.set_heartbeat(self._heartbeat_s())
        self.engine.flush_trace()  # a day of heartbeats only must still leave its trace

    async def _noop_heartbeat(self) -> None:
        """NOOP keeps the NAT mapping (and may carry untagged news); a late answer means a dead link."""
        idle_s = time.monotonic() - self.schedule.last_traffic
        try:
            await self.imap.noop(timeout_s=self.reply_timeout_s)
        except ImapError:
            self._heartbeat_result(idle_s, alive=False)
            raise
        self._heartbeat_result(idle_s, alive=True)
        self.schedule.heartbeat_done(time.monotonic())

    async def _wait(self, deadline: float) -> None:
        if self.mode == "poll":
            await _wait_either(self.engine.stop, self._arrived(), deadline - time.monotonic())
            if self.actions is not None and self.actions.arrived.is_set():
                await wait_event(self.engine.stop, self.actions.cfg.window_ms / 1000)  # the burst
                return
            if not self.engine.stop.is_set() and Task.HEARTBEAT in self.schedule.due(time.monotonic()):
                await self._noop_heartbeat()
            return
        if self.mode == "idle" and self.imap.selected != self.cfg.idle_folder:
            # A sync (not a bare EXAMINE): a change since the last look is not lost.
            await self.engine.sync_folders([self.cfg.idle_folder], strategy="idle", keep_selected=True)
            self.schedule.traffic(time.monotonic())
            if self.imap.selected != self.cfg.idle_folder:
                # IDLE with nothing selected hears nothing: say so once and poll instead.
                self.mode, self.idle_folder_missing = "poll", True
                log.warning(
                    "idle_folder %r does not exist; polling every %s s",
                    self.cfg.idle_folder,
                    f"{self.cfg.poll_interval_s:g}",
                    extra=kv(idle_folder=self.cfg.idle_folder, poll_interval_s=self.cfg.poll_interval_s),
                )
                return
            if self.imap.push.waiting:
                return
        heartbeat = False  # the deadline passed in silence: DONE and its answer are the heartbeat
        idle_s = 0.0
        try:
            async with self.imap.idle(done_timeout_s=self.reply_timeout_s) as end:
                first = asyncio.ensure_future(self.imap.push.wait())
                stopper = asyncio.ensure_future(self.engine.stop.wait())
                action = asyncio.ensure_future(self._arrived().wait())
                try:
                    await asyncio.wait(
                        {first, stopper, action},
                        timeout=max(0.0, deadline - time.monotonic()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    first.cancel()
                    stopper.cancel()
                    action.cancel()
                if action.done() and not action.cancelled() and not first.done():
                    # An app's action: collect the burst within window_ms while still idle, so
                    # it all goes out in one wake (an IMAP push meanwhile ends the window too).
                    assert self.actions is not None
                    await _wait_either(
                        self.engine.stop, _PushReady(self.imap), self.actions.cfg.window_ms / 1000
                    )
                elif first.done() and not first.cancelled() and first.exception() is None:
                    # Coalesce the burst: one sync for everything that arrives within debounce_ms.
                    await wait_event(self.engine.stop, self.cfg.debounce_ms / 1000)
                elif first.done() and not first.cancelled() and first.exception() is not None:
                    raise first.exception()  # type: ignore[misc]
                elif not self.engine.stop.is_set():
                    heartbeat = True
                    idle_s = time.monotonic() - self.schedule.last_traffic
                # Only a heartbeat waits for IDLE's answer to DONE (it proves the link alive); news
                # or an action sends its first command right behind DONE: one round trip less
                # between a change and its event (a cellular RTT is 50-70 ms).
                end.wait_for_answer = heartbeat
        except ImapError:
            if heartbeat:
                self._heartbeat_result(idle_s, alive=False)
            raise
        if heartbeat:
            self._heartbeat_result(idle_s, alive=True)
            self.schedule.heartbeat_done(time.monotonic())

    async def _sync(self, hints: Hints) -> None:
        eng = self.engine
        for old, new in hints.renamed:
            eng.cache.rename_folder(old, new)
        # A deletion notice is checked, not obeyed: it can be older than a re-creation of the same
        # name that a sync already picked up (DELETE + CREATE), and deleting that new folder made
        # its messages be announced again under ids apps had already seen (found by the soak test).
        # Syncing the folder finds it gone (NONEXISTENT) or re-created (a new UIDVALIDITY).
        folders = sorted(hints.folders | hints.deleted)
        if self.mode == "idle":
            for name in sorted(hints.deleted):
                eng.cache.delete_folder(name)
            folders = [self.cfg.idle_folder]
        if folders:
            await eng.sync_folders(folders, strategy=self.mode, keep_selected=self.mode == "idle")
        self.syncs += 1
        log.debug("push sync", extra=kv(folders=len(folders), mode=self.mode))

    async def _names(self) -> None:
        from cpmsync.daemon.discovery import list_names

        if self.engine.condstore:
            listings = await list_names(self.imap)
            new = await self.engine.apply_names(listings)
            names = {x.name for x in listings}
            if new:
                await self.engine.sync_folders(new, strategy="names")
        else:
            # Polls compare STATUS only: this pass also finds flag changes that moved no count.
            await self.engine.catch_up(full=True)
            names = set(self.engine.cache.folders())
        if self.idle_folder_missing and self.cfg.idle_folder in names:
            self.mode, self.idle_folder_missing = "idle", False
            log.info("idle_folder %r exists now; idling on it", self.cfg.idle_folder)

    def _arrived(self) -> asyncio.Event:
        """Set when an app's action is queued; never set without an action queue."""
        return self._never if self.actions is None else self.actions.arrived


class _PushReady:
    """`wait()` returns once the IMAP connection has news (or died), like an Event."""

    def __init__(self, imap: ImapClient) -> None:
        self.imap = imap

    async def wait(self) -> None:
        try:
            await self.imap.push.wait()
        except ImapError:
            return


async def _wait_either(stop: asyncio.Event, other: asyncio.Event | _PushReady, timeout_s: float) -> None:
    """Until `stop` or `other` fires, at most timeout_s."""
    if timeout_s <= 0:
        return
    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())}
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
