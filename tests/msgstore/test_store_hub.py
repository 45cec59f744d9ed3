"""Change notification: committed changes reach the same user's other sessions, in order, at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import (
    ChangeHub,
    EventKind,
    FlagMode,
    MailboxExists,
    MessageStore,
    StoreEvent,
    SubscriptionClosed,
)

MSG = b"Subject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MessageStore]:
    s = MessageStore(f"sqlite:///{tmp_path / 'store.sqlite'}", sqlite_synchronous="NORMAL")
    s.add_user("alice", "alice-pw")
    s.add_user("bob", "bob-pw")
    yield s
    s.close()


def _drain(sub: object) -> list[StoreEvent]:
    out = []
    while (ev := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        out.append(ev)
    return out


async def test_every_kind_of_change_is_published_after_commit(store: MessageStore) -> None:
    async with store.hub.subscription("alice") as sub:
        await asyncio.to_thread(store.create_mailbox, "alice", "a")
        await asyncio.to_thread(store.create_mailbox, "alice", "b")
        a = await asyncio.to_thread(store.append, "alice", "a", MSG)
        await asyncio.to_thread(store.store_flags, "alice", "a", None, FlagMode.ADD, ["\\Deleted"])
        await asyncio.to_thread(store.copy, "alice", "a", None, "b")
        await asyncio.to_thread(store.expunge, "alice", "a")
        await asyncio.to_thread(store.move, "alice", "b", None, "a")
        await asyncio.to_thread(store.rename_mailbox, "alice", "b", "c")
        await asyncio.to_thread(store.subscribe, "alice", "c")
        await asyncio.to_thread(store.unsubscribe, "alice", "c")
        await asyncio.to_thread(store.delete_mailbox, "alice", "c")
        await asyncio.sleep(0)  # let the loop run the deliveries scheduled from the threads
        evs = _drain(sub)
    kinds = [e.kind for e in evs]
    assert kinds == [
        EventKind.CREATE,
        EventKind.CREATE,
        EventKind.APPEND,
        EventKind.FLAGS,
        EventKind.APPEND,  # copy into b
        EventKind.EXPUNGE,
        EventKind.APPEND,  # move: into a first,
        EventKind.EXPUNGE,  # then out of b
        EventKind.RENAME,
        EventKind.SUBSCRIBE,
        EventKind.UNSUBSCRIBE,
        EventKind.DELETE,
    ]
    assert evs[2].uids == (a.uid,) and evs[2].modseq == a.modseq
    rename = evs[8]
    assert (rename.mailbox, rename.old_name) == ("c", "b")
    modseqs = [e.modseq for e in evs if e.modseq]
    assert modseqs == sorted(modseqs)


async def test_failed_change_publishes_nothing(store: MessageStore) -> None:
    await asyncio.to_thread(store.create_mailbox, "alice", "a")
    async with store.hub.subscription("alice") as sub:
        with pytest.raises(MailboxExists):
            await asyncio.to_thread(store.create_mailbox, "alice", "a")
        await asyncio.sleep(0)
        assert _drain(sub) == []


async def test_users_hear_only_their_own_changes(store: MessageStore) -> None:
    async with store.hub.subscription("bob") as bob:
        await asyncio.to_thread(store.create_mailbox, "alice", "a")
        await asyncio.sleep(0)
        assert _drain(bob) == []


async def test_waiting_session_wakes_up(store: MessageStore) -> None:
    async with store.hub.subscription("alice") as sub:
        waiter = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        await asyncio.to_thread(store.create_mailbox, "alice", "x")
        async with asyncio.timeout(5):
            ev = await waiter
    assert (ev.kind, ev.mailbox) == (EventKind.CREATE, "x")


async def test_slow_subscriber_gets_one_overflow_marker() -> None:
    hub = ChangeHub(max_queued_events=3)
    sub = hub.subscribe("alice")
    hub.publish(StoreEvent("alice", "a", 1, EventKind.APPEND, (i,), i) for i in range(1, 10))
    await asyncio.sleep(0)
    evs = _drain(sub)
    assert [e.kind for e in evs] == [EventKind.APPEND] * 3 + [EventKind.OVERFLOW]
    # the marker taken (the consumer resyncs from there), events queue again, and a second
    # overflow is marked too: without it that consumer would miss changes for good
    assert not sub.overflowed
    hub.publish(StoreEvent("alice", "a", 1, EventKind.APPEND, (i,), i) for i in range(10, 20))
    await asyncio.sleep(0)
    assert [e.kind for e in _drain(sub)] == [EventKind.APPEND] * 3 + [EventKind.OVERFLOW]
    sub.close()
    assert hub.subscriber_count("alice") == 0
    with pytest.raises(SubscriptionClosed):
        await sub.get()


async def test_closing_ends_iteration() -> None:
    hub = ChangeHub()
    sub = hub.subscribe("alice")
    hub.publish([StoreEvent("alice", "a", 1, EventKind.CREATE)])

    async def consume() -> list[StoreEvent]:
        return [ev async for ev in sub]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    sub.close()
    async with asyncio.timeout(5):
        got = await task
    assert [e.kind for e in got] == [EventKind.CREATE]
