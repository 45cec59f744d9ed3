"""Push across msgstore instances that share one PostgreSQL database (LISTEN/NOTIFY).

Every write transaction with events sends them with pg_notify before it commits (store.py), so
PostgreSQL hands them, once committed and in commit order, to every instance listening on the
store's channel. `PgChangeBus` is that listener: one connection per instance, whose notifications
feed the instance's `ChangeHub`, so IDLE, NOTIFY and the selected mailbox behave as in one process.

- *Commit order, own changes included.* An instance's own events are not published straight after
  its commit (a change another instance committed just before could then arrive second, and a
  session drops an EXISTS for a UID below one it already announced). The writer registers them
  under a token carried in its payload, and the bus publishes them when PostgreSQL echoes that
  token, after every earlier commit's notification. The writer waits for that (a round trip on an
  open connection), so the session that made a change still sees it before its tagged reply.
- *Only local users.* A notification starts with the user name; one for a user with no session
  here is dropped before its JSON is read.
- *Nothing lost in a gap.* For each user with a session here the bus keeps the MODSEQ up to which
  it has delivered (for a user who just logged in: the user's MODSEQ then). After a lost
  connection it reconnects, LISTENs, and replays each such user's changes above that MODSEQ from
  the store (`MessageStore.changes_after`) before it reads new notifications, which it then skips
  up to what the replay covered. Replayed events are the net effect, so a session may hear some
  news twice (a FETCH FLAGS again), never miss any. While the listener is down nothing is
  published at once, not even the instance's own events: the replay delivers them in MODSEQ
  order with the rest. Subscriptions carry no MODSEQ and are not replayed; a user who logged in
  while no baseline could be read gets a resync (`EventKind.OVERFLOW`) instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cpmsync.logs import kv
from cpmsync.msgstore.hub import EventKind, StoreEvent
from cpmsync.msgstore.pg_payload import decode_notification, split_head

if TYPE_CHECKING:
    from cpmsync.msgstore.store import MessageStore

__all__ = ["BusStats", "PgChangeBus", "listener_application_name"]

log = logging.getLogger("cpmsync.msgstore.pg_listener")


def listener_application_name(instance: str) -> str:
    """The LISTEN connection's application_name: while PostgreSQL lists it in pg_stat_activity the
    instance is alive (the cross-instance connection limit counts only live instances' claims)."""
    return f"cpmsync-listener-{instance}"


@dataclass
class BusStats:
    """Counters an operator watches (logged every `stats_interval_s` when they moved)."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    received: int = 0  # notifications read from PostgreSQL
    dropped: int = 0  # ... for users with no session on this instance
    own: int = 0  # ... echoes of this instance's commits
    delivered_events: int = 0  # events handed to the hub from other instances
    replayed_events: int = 0  # events rebuilt from the store after a reconnect
    overflowed_users: int = 0  # users told to resync (no baseline to replay from)
    echo_timeouts: int = 0  # own commits whose echo did not come in time (left to the replay)
    undecodable: int = 0


@dataclass
class _Pending:
    events: Sequence[StoreEvent]
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Mark:
    since: int | None = None  # replay starts above this MODSEQ; None: not known yet
    skip_upto: int = 0  # notifications up to this MODSEQ were covered by a replay


class PgChangeBus:
    """One instance's LISTEN connection and the bookkeeping that makes it lossless; see module doc.

    Run it with `async with bus.running(): ...` (or `await bus.run()` until `bus.stop()`).
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        echo_timeout_s: float = 2.0,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 5.0,
        ping_interval_s: float = 10.0,
        stats_interval_s: float = 60.0,
    ) -> None:
        if not store.is_postgresql:
            raise ValueError("cross-instance push needs a PostgreSQL store")
        self.store = store
        self.hub = store.hub
        self.instance = store.instance_id
        self.channel = store.pg_channel
        self.echo_timeout_s = echo_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.ping_interval_s = ping_interval_s
        self.stats_interval_s = stats_interval_s
        self.stats = BusStats()
        self.live = asyncio.Event()  # LISTENing and caught up
        self.backend_pid: int | None = None  # of the LISTEN connection (for monitoring and tests)
        self._lock = threading.Lock()
        self._is_live = False
        self._pending: dict[int, _Pending] = {}
        self._tokens = itertools.count(1)
        self._marks: dict[str, _Mark] = {}
        self._need_baseline: set[str] = set()
        self._baseline_wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._replaying = False
        self._stopping = asyncio.Event()
        self._session_task: asyncio.Task[None] | None = None

    # ================================================================ lifetime

    @asynccontextmanager
    async def running(self, *, ready_timeout_s: float = 10.0) -> AsyncIterator[PgChangeBus]:
        """Run the bus around the body; wait (bounded) for the first LISTEN before the body starts,
        so an instance reports ready only when it will hear the others."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.run())
            try:
                async with asyncio.timeout(ready_timeout_s):
                    await self.live.wait()
            except TimeoutError:
                log.warning(
                    "PostgreSQL listener not connected yet: serving anyway; other instances' changes "
                    "reach this one once it connects",
                    extra=kv(channel=self.channel),
                )
            try:
                yield self
            finally:
                self.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Listen (reconnecting as needed) until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.hub.watcher = self
        self.store.attach_bus(self)
        for user in self.hub.watched_users():
            self.user_watched(user)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._listen_forever()),
                    tg.create_task(self._baselines()),
                    tg.create_task(self._log_stats()),
                ]
                await self._stopping.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self.store.attach_bus(None)
            self.hub.watcher = None
            self._go_dark()

    # ================================================================ the writer's side (any thread)

    def register(self, events: Sequence[StoreEvent]) -> int | None:
        """Before commit: a token for the payload; None while not listening (the replay after
        reconnecting delivers these events)."""
        with self._lock:
            if not self._is_live:
                return None
            token = next(self._tokens)
            self._pending[token] = _Pending(events)
            return token

    def abandon(self, token: int) -> None:
        """The transaction rolled back: no echo will come."""
        with self._lock:
            self._pending.pop(token, None)

    def settle(self, token: int) -> None:
        """After commit: wait until the echo published the events (not on the loop itself, which
        publishes them). No echo in time: reconnect, and the replay delivers them."""
        if threading.get_ident() == self._loop_thread:
            return
        with self._lock:
            pending = self._pending.get(token)
        if pending is None:
            return
        while not pending.done.wait(self.echo_timeout_s):
            if self._replaying:
                continue  # the echo queues behind a replay in progress
            self.stats.echo_timeouts += 1
            log.warning("no echo from PostgreSQL for a commit: reconnecting the listener")
            with self._lock:
                self._pending.pop(token, None)
            if self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._kick)
                except RuntimeError:
                    pass
            return

    # ================================================================ the hub's side

    def user_watched(self, user: str) -> None:
        """A first session of `user` here: note where a replay would start (read soon, in a thread)."""
        with self._lock:
            self._marks.setdefault(user, _Mark())
            self._need_baseline.add(user)
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._baseline_wake.set)
            except RuntimeError:
                pass

    def user_unwatched(self, user: str) -> None:
        with self._lock:
            self._marks.pop(user, None)
            self._need_baseline.discard(user)

    # ================================================================ internals

    def _go_dark(self) -> None:
        """Not listening: waiting writers stop waiting; their events come with the next replay."""
        with self._lock:
            self._is_live = False
            waiting = list(self._pending.values())
            self._pending.clear()
        for p in waiting:
            p.done.set()
        self.live.clear()

    def _kick(self) -> None:
        if self._session_task is not None and not self._session_task.done():
            self._session_task.cancel()

    async def _baselines(self) -> None:
        while True:
            await self._baseline_wake.wait()
            self._baseline_wake.clear()
            with self._lock:
                users = list(self._need_baseline)
            if not users:
                continue
            try:
                got = await asyncio.to_thread(self.store.user_modseqs, users)
            except Exception as e:  # the database is unreachable: the next connect replays or resyncs
                log.warning("cannot read MODSEQ baselines", extra=kv(error=str(e)))
                await asyncio.sleep(self.reconnect_max_s)
                self._baseline_wake.set()
                continue
            with self._lock:
                for user in users:
                    self._need_baseline.discard(user)
                    mark = self._marks.get(user)
                    if mark is not None and mark.since is None and user in got:
                        mark.since = got[user]

    async def _listen_forever(self) -> None:
        import psycopg

        delay = self.reconnect_min_s
        me = asyncio.current_task()
        assert me is not None
        while True:
            started = time.monotonic()
            session = asyncio.create_task(self._listen_once(psycopg))
            self._session_task = session
            try:
                await session
            except asyncio.CancelledError:
                if me.cancelling():
                    raise
                log.warning("PostgreSQL listener restarted", extra=kv(channel=self.channel))
            except (psycopg.Error, OSError) as e:
                text = str(e).strip()
                log.warning(
                    "PostgreSQL listener connection lost",
                    extra=kv(channel=self.channel, error=text.splitlines()[0] if text else type(e).__name__),
                )
            finally:
                self._session_task = None
                was_live = self._is_live
                self._go_dark()
                if was_live:
                    self.stats.disconnects += 1
            if time.monotonic() - started > 30:
                delay = self.reconnect_min_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _listen_once(self, psycopg: Any) -> None:
        from psycopg import sql

        try:
            conn = await psycopg.AsyncConnection.connect(
                self.store.pg_conninfo(),
                autocommit=True,
                application_name=listener_application_name(self.instance),
                connect_timeout=5,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except (psycopg.Error, OSError):
            self.stats.connect_failures += 1
            raise
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.backend_pid = conn.info.backend_pid
            with self._lock:
                self._is_live = True
            self.stats.connects += 1
            self._replaying = True
            try:
                await self._replay()
            finally:
                self._replaying = False
            self.live.set()
            log.info(
                "PostgreSQL listener ready",
                extra=kv(channel=self.channel, backend_pid=self.backend_pid, instance=self.instance),
            )
            while True:
                async for n in conn.notifies(timeout=self.ping_interval_s):
                    await self._on_payload(n.payload)
                await conn.execute("SELECT 1")  # a dead connection shows up here, not in silence

    async def _replay(self) -> None:
        """After LISTEN: each local user's changes above their mark, from the store."""
        t0 = time.monotonic()
        with self._lock:
            marks = dict(self._marks)
        if not marks:
            return
        now = await asyncio.to_thread(self.store.user_modseqs, list(marks))
        replayed = 0
        resynced = 0
        for user, mark in marks.items():
            current = now.get(user)
            if current is None:
                continue
            since = mark.since
            upto = current
            if since is None:  # logged in while we could not read a baseline: resync them
                self.hub.publish([StoreEvent(user, "", 0, EventKind.OVERFLOW)])
                resynced += 1
            elif current > since:
                upto, events = await asyncio.to_thread(self.store.changes_after, user, since)
                self.hub.publish(events)
                replayed += len(events)
            with self._lock:
                if self._marks.get(user) is mark:
                    mark.since = max(mark.since or 0, upto)
                    mark.skip_upto = max(mark.skip_upto, upto)
        self.stats.replayed_events += replayed
        self.stats.overflowed_users += resynced
        if replayed or resynced or self.stats.connects > 1:
            log.info(
                "PostgreSQL listener caught up",
                extra=kv(
                    users=len(marks),
                    events=replayed,
                    resynced=resynced,
                    ms=round(1000 * (time.monotonic() - t0)),
                ),
            )

    async def _on_payload(self, payload: str) -> None:
        self.stats.received += 1
        try:
            user, instance, token, _ = split_head(payload)
        except ValueError:
            self.stats.undecodable += 1
            return
        if instance == self.instance:
            self.stats.own += 1
            with self._lock:
                pending = self._pending.pop(token, None)
                mark = self._marks.get(user)
                if pending is not None and mark is not None:
                    top = max((e.modseq for e in pending.events), default=0)
                    mark.since = max(mark.since or 0, top)
            if pending is not None:
                self.hub.publish(pending.events)
                pending.done.set()
            return
        with self._lock:
            mark = self._marks.get(user)
        if mark is None:
            self.stats.dropped += 1
            return
        try:
            note = decode_notification(payload)
        except (ValueError, TypeError, KeyError):
            self.stats.undecodable += 1
            log.warning("undecodable notification", extra=kv(channel=self.channel))
            return
        events: Sequence[StoreEvent] = note.events
        if note.needs_names:
            events = [(await self._with_names(e)) if not e.mailbox else e for e in note.events]
        fresh = [e for e in events if e.modseq == 0 or e.modseq > mark.skip_upto]
        if fresh:
            self.hub.publish(fresh)
            self.stats.delivered_events += len(fresh)
            with self._lock:
                mark.since = max(mark.since or 0, max(e.modseq for e in fresh))

    async def _with_names(self, ev: StoreEvent) -> StoreEvent:
        name, old = await asyncio.to_thread(self.store.event_names, ev.mailbox_id, ev.modseq, ev.kind)
        return StoreEvent(ev.user, name, ev.mailbox_id, ev.kind, ev.uids, ev.modseq, old)

    async def _log_stats(self) -> None:
        last: BusStats | None = None
        while True:
            await asyncio.sleep(self.stats_interval_s)
            now = BusStats(**vars(self.stats))
            if now != last:
                with self._lock:
                    users = len(self._marks)
                log.info("PostgreSQL listener stats", extra=kv(users=users, **vars(now)))
                last = now
