"""SELECT/EXAMINE and FETCH read the store on the event loop itself when the read is short and
SQLite has nothing to wait for (`SessionBase._db_read`), and on a worker thread otherwise: a
first sync EXAMINEs and FETCHes thousands of small folders, and the hop to a thread cost more
than the reads. The answers must not tell the two apart, and a long read (a big mailbox, a big
message) must still leave the loop to the other sessions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from server_testlib import Running, message, running_server

from cpmsync.msgstore import FlagMode, MessageStore, StoreBusy, UidSet
from cpmsync.msgstore.session_base import _SHORT_FETCH_MESSAGES, _SHORT_READ_BYTES, _SHORT_SELECT_MESSAGES
from cpmsync.msgstore.store import BulkMailbox, BulkMessage

# (command, whether its reads are short enough for the loop)
SCRIPT = [
    ("ENABLE QRESYNC", True),  # as the daemon does
    ('EXAMINE "Chats"', True),
    (
        "UID FETCH 1:* (UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE ENVELOPE "
        "BODY.PEEK[HEADER.FIELDS (CONTENT-TYPE)] BODY.PEEK[TEXT]<0.256>)",
        True,
    ),
    ("FETCH 1:* (FLAGS)", True),
    ("UNSELECT", True),
    ('EXAMINE "Big"', False),  # more than _SHORT_SELECT_MESSAGES messages
    ("FETCH 1000:* (FLAGS UID)", True),
    ("FETCH 1:* (FLAGS)", False),
    ("FETCH 1000:* (ENVELOPE)", True),
    (f"FETCH 1:{_SHORT_FETCH_MESSAGES} (FLAGS)", True),
    (f"FETCH 1:{_SHORT_FETCH_MESSAGES + 1} (FLAGS)", False),  # more than _SHORT_FETCH_MESSAGES UIDs
    ("UNSELECT", True),
    ('EXAMINE "Files"', True),
    ("FETCH 1 (BODY.PEEK[TEXT]<0.100>)", False),  # a message of more than _SHORT_READ_BYTES
    ("FETCH 2 (RFC822.SIZE BODY.PEEK[])", True),
    ('EXAMINE "Missing"', True),
]


def _reads(line: str) -> bool:
    return line.startswith(("EXAMINE", "FETCH", "UID FETCH"))


def _fill(store: MessageStore) -> None:
    store.create_mailbox("alice", "Chats")
    for i, flags in enumerate([["\\Seen"], [], ["$Work"]]):
        store.append("alice", "Chats", message(i + 1), flags=flags)
    store.store_flags("alice", "Chats", UidSet.from_uids([2]), FlagMode.ADD, ["\\Flagged"])
    many = [BulkMessage(message(i), ("\\Seen",) if i % 3 else ()) for i in range(_SHORT_SELECT_MESSAGES + 1)]
    store.bulk_load("alice", [BulkMailbox("Big", many)])
    store.create_mailbox("alice", "Files")
    store.append("alice", "Files", message(1, body="x" * (_SHORT_READ_BYTES + 1)))
    store.append("alice", "Files", message(2))


async def _run_script(srv: Running, hops: list[int]) -> list[tuple[bytes, int]]:
    """Each command's raw reply and how many store calls went to a worker thread for it."""
    out = []
    async with srv.client() as c:
        await c.login()
        for line, _short in SCRIPT:
            before = len(hops)
            reply = await c.cmd(line)
            out.append((reply.raw, len(hops) - before))
    return out


def _count_hops(srv: Running) -> list[int]:
    """Count the sessions' calls handed to a worker thread (StoreWorkers.call)."""
    calls = srv.server.ctx.store_calls
    hops: list[int] = []
    real: Callable[..., Any] = calls.call

    async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(1)
        return await real(fn, *args, **kwargs)

    calls.call = counted  # type: ignore[method-assign]
    return hops


async def test_examine_and_fetch_answer_the_same_on_the_loop_and_on_a_worker(
    store: MessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store)
    async with running_server(store=store) as srv:
        hops = _count_hops(srv)
        on_loop = await _run_script(srv, hops)
        # Short reads made no hop; each long one went to a worker.
        assert [n == 0 for _raw, n in on_loop] == [short for _line, short in SCRIPT]
        with monkeypatch.context() as m:  # PostgreSQL's way: every read on a worker
            m.setattr(store, "reads_without_waiting", False)
            on_workers = await _run_script(srv, hops)
        assert [raw for raw, _n in on_workers] == [raw for raw, _n in on_loop]
        reads = [n for (line, _s), (_r, n) in zip(SCRIPT, on_workers, strict=True) if _reads(line)]
        assert len(reads) == 13 and all(n > 0 for n in reads)

        def busy(*_args: Any, **_kwargs: Any) -> None:
            raise StoreBusy("the database is busy, try again")

        with monkeypatch.context() as m:  # SQLite busy on the loop: the same read on a worker
            m.setattr(store, "select_now", busy)
            m.setattr(store, "fetch_now", busy)
            when_busy = await _run_script(srv, hops)
        assert [raw for raw, _n in when_busy] == [raw for raw, _n in on_loop]
        assert [n for _raw, n in when_busy] == [n for _raw, n in on_workers]
    raws = [raw for raw, _n in on_loop]
    assert b"* 3 EXISTS" in raws[1] and b"[UNSEEN 2]" in raws[1] and b"$Work" in raws[1]
    assert raws[2].count(b"* ") == 3 and b"\\Flagged" in raws[3]
    assert f"* {_SHORT_SELECT_MESSAGES + 1} EXISTS".encode() in raws[5] and b"[UNSEEN 1]" in raws[5]
    assert raws[7].count(b" FETCH (FLAGS") == _SHORT_SELECT_MESSAGES + 1
    assert b"x" * 100 in raws[13] and b"hello 2" in raws[14]
    assert b" NO " in raws[15].splitlines()[-1]


def test_a_write_after_a_read_for_the_loop_still_waits_for_the_lock(
    store: MessageStore, tmp_path: Path
) -> None:
    """A read for the loop turns the busy wait of this thread's SQLite connection off (and leaves
    it off for the next such read); a write after it on the same thread must again wait for
    another writer to finish, not fail at once with StoreBusy."""
    store.create_mailbox("alice", "Chats")
    store.append("alice", "Chats", message(1))
    mailbox_id = store.select("alice", "Chats", readonly=True).id
    other = sqlite3.connect(tmp_path / "store.sqlite", isolation_level=None, check_same_thread=False)
    release = threading.Timer(0.3, other.rollback)
    try:
        assert store.fetch_now("alice", mailbox_id, None) is not None
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
        release.start()
        assert store.append("alice", "Chats", message(2)).uid == 2
        assert [r.uid for r in store.fetch_now("alice", mailbox_id, None) or []] == [1, 2]
    finally:
        release.cancel()
        if release.is_alive():
            release.join()
        other.close()
