"""In-process pub/sub of committed changes, so IDLE and NOTIFY sessions learn within milliseconds.

The store publishes from whatever thread committed (usually an `asyncio.to_thread` worker);
subscribers live on an event loop and are woken with `call_soon_threadsafe`. Only changes already
committed are published, so a session that reacts to an event always reads the new state.
Across processes sharing one PostgreSQL database, `pg_listener.PgChangeBus` feeds this hub with
the other instances' changes (LISTEN/NOTIFY); it learns which users to care about through
`ChangeHub.watcher`.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ChangeHub", "EventKind", "HubWatcher", "StoreEvent", "Subscription", "SubscriptionClosed"]

_DEFAULT_MAX_QUEUED_EVENTS = 10_000


class SubscriptionClosed(Exception):
    """`get()` on a closed subscription."""


class EventKind(enum.Enum):
    APPEND = "append"
    FLAGS = "flags"
    EXPUNGE = "expunge"
    CREATE = "create"
    DELETE = "delete"
    RENAME = "rename"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    NOMODSEQ = "nomodseq"
    OVERFLOW = "overflow"  # the subscriber fell behind and lost events: resync


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """One committed change. `mailbox` is the name after the change (new name for RENAME)."""

    user: str
    mailbox: str
    mailbox_id: int
    kind: EventKind
    uids: tuple[int, ...] = ()
    modseq: int = 0
    old_name: str | None = None
    origin: object | None = None


class HubWatcher(Protocol):
    """Told when a user gets a first subscriber and loses the last (called outside the hub's lock,
    on the subscribing or closing thread), so a cross-instance listener tracks only local users."""

    def user_watched(self, user: str) -> None: ...

    def user_unwatched(self, user: str) -> None: ...


class Subscription:
    """A bounded queue of one user's events, consumed on the loop that created it. A consumer that
    polls (`get_nowait`) sets `on_delivery`, called on the loop after each event is queued, instead
    of keeping a task awaiting `get()`."""

    def __init__(self, hub: ChangeHub, user: str, loop: asyncio.AbstractEventLoop, max_queued: int) -> None:
        self.user = user
        self.overflowed = False  # an OVERFLOW marker is queued; later events are dropped until it is taken
        self.on_delivery: Callable[[], None] | None = None
        self._hub = hub
        self._loop = loop
        self._max = max_queued
        self._queue: deque[StoreEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # -- called on the loop thread (via call_soon_threadsafe) --
    def _deliver(self, event: StoreEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._max:
            if not self.overflowed:
                self.overflowed = True
                self._queue.append(StoreEvent(self.user, "", 0, EventKind.OVERFLOW))
        else:
            self._queue.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self.on_delivery is not None:
            self.on_delivery()

    # -- consumer API --
    def _take(self) -> StoreEvent:
        ev = self._queue.popleft()
        if ev.kind is EventKind.OVERFLOW:
            self.overflowed = False  # the consumer resyncs from here: queue again
        return ev

    def get_nowait(self) -> StoreEvent | None:
        """The next queued event, or None."""
        return self._take() if self._queue else None

    async def get(self) -> StoreEvent:
        """Wait for the next event."""
        while not self._queue:
            if self._closed:
                raise SubscriptionClosed(self.user)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._take()

    def pending(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> AsyncIterator[StoreEvent]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[StoreEvent]:
        while True:
            try:
                ev = await self.get()
            except SubscriptionClosed:
                return
            yield ev

    def close(self) -> None:
        """Call on the loop thread; a pending `get()` raises SubscriptionClosed."""
        if not self._closed:
            self._closed = True
            self._hub._remove(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)


class ChangeHub:
    """Fan-out of `StoreEvent`s to the subscriptions of the event's user."""

    def __init__(self, max_queued_events: int = _DEFAULT_MAX_QUEUED_EVENTS) -> None:
        self.max_queued_events = max_queued_events
        self._lock = threading.Lock()
        self._subs: dict[str, list[Subscription]] = {}
        self.watcher: HubWatcher | None = None

    def subscribe(self, user: str) -> Subscription:
        """Call from the event loop that will consume the events."""
        sub = Subscription(self, user, asyncio.get_running_loop(), self.max_queued_events)
        with self._lock:
            subs = self._subs.setdefault(user, [])
            first = not subs
            subs.append(sub)
        if first and self.watcher is not None:
            self.watcher.user_watched(user)
        return sub

    @asynccontextmanager
    async def subscription(self, user: str) -> AsyncIterator[Subscription]:
        sub = self.subscribe(user)
        try:
            yield sub
        finally:
            sub.close()

    def subscriber_count(self, user: str) -> int:
        with self._lock:
            return len(self._subs.get(user, ()))

    def watched_users(self) -> list[str]:
        """Users with at least one subscriber now."""
        with self._lock:
            return list(self._subs)

    def _remove(self, sub: Subscription) -> None:
        last = False
        with self._lock:
            subs = self._subs.get(sub.user)
            if subs and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subs[sub.user]
                    last = True
        if last and self.watcher is not None:
            self.watcher.user_unwatched(sub.user)

    def publish(self, events: Iterable[StoreEvent]) -> None:
        """Thread-safe; keeps the order of `events` for every subscriber. A subscriber on the
        publishing thread's own loop (a store call run on the loop) gets them with call_soon:
        same queue, same order, no wake-up write to the loop's self-pipe."""
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread
            here = None
        for ev in events:
            with self._lock:
                targets = list(self._subs.get(ev.user, ()))
            for sub in targets:
                try:
                    if sub._loop is here:
                        here.call_soon(sub._deliver, ev)
                    else:
                        sub._loop.call_soon_threadsafe(sub._deliver, ev)
                except RuntimeError:  # that loop is closed: its session is gone
                    self._remove(sub)
