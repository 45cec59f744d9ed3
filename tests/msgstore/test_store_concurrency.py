"""50 sessions of one user at once: MODSEQs unique and strictly increasing, nothing lost (CR I.3).

Threads stand in for the server's `asyncio.to_thread` calls; the asyncio variant goes through
exactly that path and checks that the change hub hears every committed change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import EventKind, FlagMode, MessageStore, StoreEvent, UidSet

SESSIONS = 50
APPENDS_PER_SESSION = 6
MSG = b"From: <tel:+15143457900>\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MessageStore]:
    s = MessageStore(f"sqlite:///{tmp_path / 'store.sqlite'}", sqlite_synchronous="NORMAL")
    s.add_user("alice", "alice-pw")
    for i in range(5):
        s.create_mailbox("alice", f"box{i}")
    yield s
    s.close()


def _session(store: MessageStore, n: int, modseqs: list[int], errors: list[BaseException]) -> None:
    try:
        box = f"box{n % 5}"
        for _ in range(APPENDS_PER_SESSION):
            a = store.append("alice", box, MSG)
            modseqs.append(a.modseq)
            r = store.store_flags("alice", box, UidSet.from_uids([a.uid]), FlagMode.ADD, [f"$s{n}"])
            assert r.modseq is not None
            modseqs.append(r.modseq)
    except BaseException as e:  # reported by the main thread
        errors.append(e)


def test_fifty_threads_of_one_user(store: MessageStore) -> None:
    start = store.user_highest_modseq("alice")
    per_thread: list[list[int]] = [[] for _ in range(SESSIONS)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_session, args=(store, n, per_thread[n], errors)) for n in range(SESSIONS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    every = [m for ms in per_thread for m in ms]
    total = SESSIONS * APPENDS_PER_SESSION * 2
    assert len(every) == total
    assert len(set(every)) == total, "two changes got the same MODSEQ"
    assert sorted(every) == list(range(start + 1, start + total + 1)), "MODSEQs have gaps"
    for ms in per_thread:
        assert ms == sorted(ms), "one session saw its MODSEQs go backwards"
    # Nothing lost: every message is there, with its flag, and UIDs are dense per mailbox.
    messages = 0
    for i in range(5):
        recs = store.fetch("alice", f"box{i}", None)
        messages += len(recs)
        assert [r.uid for r in recs] == list(range(1, len(recs) + 1))
        assert all(len(r.flags) == 1 for r in recs)
        assert store.status("alice", f"box{i}").highestmodseq == max(r.modseq for r in recs)
    assert messages == SESSIONS * APPENDS_PER_SESSION


async def test_fifty_tasks_via_to_thread_and_the_hub_hears_everything(store: MessageStore) -> None:
    events: list[StoreEvent] = []
    async with store.hub.subscription("alice") as sub:

        async def session(n: int) -> list[int]:
            out = []
            for _ in range(3):
                a = await asyncio.to_thread(store.append, "alice", f"box{n % 5}", MSG, origin=n)
                out.append(a.modseq)
            return out

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(session(n)) for n in range(SESSIONS)]
        # Every append published before its call returned: the queue already holds them all
        # once the loop has run the scheduled deliveries.
        async with asyncio.timeout(10):
            while len(events) < SESSIONS * 3:
                events.append(await sub.get())
    modseqs = sorted(m for t in tasks for m in t.result())
    assert len(set(modseqs)) == SESSIONS * 3
    assert [e.modseq for e in events] == modseqs, "events arrive in commit order"
    assert all(e.kind is EventKind.APPEND and e.user == "alice" for e in events)
    assert {e.origin for e in events} == set(range(SESSIONS))
