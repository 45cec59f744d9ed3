"""50 sessions of one user appending and flagging at once: every MODSEQ unique and strictly
increasing in commit order, nothing lost, and every session's view converges."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from server_testlib import Client, Running, message, running_server

from cpmsync.imap import ExistsData, FetchData, SearchData, StatusData
from cpmsync.msgstore import MessageStore

SESSIONS = 50
PER_SESSION = 4


async def _worker(srv: Running, n: int, modseqs: list[int]) -> None:
    async with Client(srv.host, srv.port, timeout_s=60) as c:
        await c.login()
        await c.cmd("ENABLE CONDSTORE")
        for i in range(PER_SESSION):
            reply = await c.append("INBOX", message(n * 100 + i, subject=f"s{n}-{i}"))
            assert reply.ok, reply
        await c.cmd("SELECT INBOX")
        found = await c.cmd(f'UID SEARCH SUBJECT "s{n}-"')
        uids = found.of(SearchData)[0].ids
        assert len(uids) == PER_SESSION
        reply = await c.cmd(f"UID STORE {','.join(map(str, uids))} +FLAGS ($S{n})")
        assert reply.ok
        modseqs += [f.modseq for f in reply.of(FetchData) if f.modseq]


async def test_fifty_sessions_append_and_flag() -> None:
    async with running_server() as srv:
        modseqs: list[int] = []
        committed: list[int] = []
        sub = srv.store.hub.subscribe("alice")
        try:
            async with asyncio.TaskGroup() as tg:
                for n in range(SESSIONS):
                    tg.create_task(_worker(srv, n, modseqs))
            while (ev := sub.get_nowait()) is not None:
                if ev.modseq:
                    committed.append(ev.modseq)
        finally:
            sub.close()
        async with srv.session() as c:
            st = (await c.cmd("STATUS INBOX (MESSAGES HIGHESTMODSEQ)")).of(StatusData)[0]
            assert st.messages == SESSIONS * PER_SESSION
            await c.cmd("SELECT INBOX")
            fetched = (await c.cmd("FETCH 1:* (UID FLAGS MODSEQ)")).of(FetchData)
    # MODSEQs are unique and strictly increasing in commit order: every append and every STORE
    assert committed == sorted(committed) and len(committed) == len(set(committed))
    assert len(committed) == SESSIONS * PER_SESSION + SESSIONS
    # nothing lost: each session's flag is on exactly its own messages
    for n in range(SESSIONS):
        assert sum(1 for f in fetched if f"$S{n}" in f.flags) == PER_SESSION
    # one MODSEQ per STORE, shared by its messages, distinct between STOREs
    assert len(set(modseqs)) == SESSIONS
    assert max(f.modseq for f in fetched) == st.highestmodseq == committed[-1]


async def test_an_append_waiting_for_another_writer_does_not_stall_other_sessions(tmp_path: Path) -> None:
    """On a NORMAL store a lone APPEND runs on the server's loop (`_db_short`). When another
    process holds SQLite's write lock (here a second connection to the file, as the CLI would
    have), that APPEND must wait on a worker thread, not on the loop: other sessions are served
    meanwhile, and the APPEND completes once the lock is free."""
    db = tmp_path / "store.sqlite"
    store = MessageStore(f"sqlite:///{db}", sqlite_synchronous="NORMAL")
    store.add_user("alice", "alice-pw")
    other = sqlite3.connect(db, isolation_level=None)
    try:
        async with running_server(store=store) as srv, srv.client() as a, srv.client() as b:
            await a.login()
            await b.login()
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            try:
                append = asyncio.create_task(a.append("INBOX", message(1)))
                async with asyncio.timeout(10):
                    while srv.server.ctx.store_calls.idle:  # noqa: ASYNC110 (no callback to await)
                        await asyncio.sleep(0.01)  # until the APPEND waits on a worker
                    noop = await b.cmd("NOOP")
                assert noop.ok and not append.done()
            finally:
                other.rollback()
            reply = await append
            assert reply.ok, reply
            assert [r.count for r in (await a.cmd("SELECT INBOX")).of(ExistsData)] == [1]
    finally:
        other.close()
        store.close()
