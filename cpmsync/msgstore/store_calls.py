"""Worker threads for the server's store calls: `asyncio.to_thread` without its per-call weight.

The store is synchronous; every session command makes one or more calls into it. Through
`asyncio.to_thread` each call copies the context, wraps a `concurrent.futures.Future` (a Condition
and its lock) in an asyncio one and chains the two with callbacks both ways: most of the hop's
CPU, and the hop was a third of a session's own CPU per APPEND. Here a call is one queue put and,
when it is done, one `call_soon_threadsafe` that sets the awaiting asyncio future.

    workers = StoreWorkers()
    result = await workers.call(store.list_mailboxes, user, "", ["*"])
    result = await workers.call_short(store.append, user, "INBOX", data)   # inline when idle
    ...
    await workers.aclose()   # when no call can come any more (the server's end)
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["StoreWorkers"]

_T = TypeVar("_T")
_Job = tuple[
    Callable[..., Any], tuple[Any, ...], dict[str, Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]


class StoreWorkers:
    """Threads started on demand, up to `max_workers` (asyncio's default executor's bound), that run
    calls for event loops and hand back results or exceptions on the caller's loop."""

    def __init__(self, max_workers: int | None = None, name: str = "msgstore-store") -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job (under _lock)
        self._lock = threading.Lock()
        self._closed = False
        self._inflight = 0  # calls not yet answered (counted on the loop)

    async def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`fn(*args, **kwargs)` on a worker thread. Cancelling the caller does not stop a call
        already running (as with to_thread); its result is then dropped."""
        if self._closed:
            raise RuntimeError("StoreWorkers is closed")
        self._inflight += 1
        try:
            return await self._hand_over(fn, *args, **kwargs)
        finally:
            self._inflight -= 1

    @property
    def idle(self) -> bool:
        """No call is running: `call_short` would run its call on the loop."""
        return not self._inflight

    async def call_short(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`call` for a call the caller knows to be short and not to wait for I/O: when no other
        call is running, it runs right here on the loop (the hop to a thread and back costs more
        than such a call: a fifth of an APPEND's CPU). Either way the loop runs what is ready
        before this returns, so what the call scheduled (the hub's deliveries of its events)
        happens first, as after a worker's call."""
        if self._inflight:
            return await self.call(fn, *args, **kwargs)
        if self._closed:
            raise RuntimeError("StoreWorkers is closed")
        self._inflight += 1
        try:
            result = fn(*args, **kwargs)
        finally:
            self._inflight -= 1
        await asyncio.sleep(0)
        return result

    async def _hand_over(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            start = self._idle == 0 and len(self._threads) < self.max_workers
            if start:
                t = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
            elif self._idle > 0:
                self._idle -= 1  # this job will take one of them
        if start:
            t.start()
        self._jobs.put((fn, args, kwargs, loop, fut))
        return await fut

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, kwargs, loop, fut = job
            exc: BaseException | None = None
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # handed to the caller, as to_thread does
                result, exc = None, e
            _reply(loop, fut, result, exc)
            del job, fn, args, kwargs, fut, result, exc  # hold no reference while waiting
            with self._lock:
                self._idle += 1

    async def aclose(self) -> None:
        """Let the threads finish what they run, then end them (waiting off the loop)."""
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        if threads:
            await asyncio.to_thread(_join_all, threads)


def _reply(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any, exc: BaseException | None
) -> None:
    try:
        loop.call_soon_threadsafe(_settle, fut, result, exc)
    except RuntimeError:  # that loop is closed: nobody waits any more
        pass


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _join_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join()
