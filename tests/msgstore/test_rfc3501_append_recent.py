"""RFC 3501 2.3.2 / 6.3.11: a message APPENDed to the selected mailbox is \\Recent for the session
that has it selected read-write (audit P2-12: it got `* 1 EXISTS` with `* 0 RECENT`), and for no
other session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_testlib import message, running_server

from cpmsync.imap import ExistsData, FetchData, RecentData
from cpmsync.msgstore import MessageStore


@pytest.fixture(params=["FULL", "NORMAL"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MessageStore]:
    """FULL: every APPEND goes to a worker thread; NORMAL: an APPEND with no other store call
    running is run on the loop itself (`_db_short`): the replies must not tell them apart."""
    s = MessageStore(f"sqlite:///{tmp_path / 'store.sqlite'}", sqlite_synchronous=request.param)
    s.add_user("alice", "alice-pw")
    yield s
    s.close()


async def test_append_to_selected_mailbox_is_recent_for_that_session(store: MessageStore) -> None:
    async with running_server(store=store) as srv, srv.client() as c, srv.client() as other:
        await c.login()
        await other.login()
        assert (await c.cmd('CREATE "Default"')).ok
        sel = await c.cmd('SELECT "Default"')
        assert [r.count for r in sel.of(RecentData)] == [0]
        reply = await c.append("Default", message(1))
        assert reply.ok
        assert [r.count for r in reply.of(ExistsData)] == [1]
        assert [r.count for r in reply.of(RecentData)] == [1]
        flags = (await c.cmd("FETCH 1 FLAGS")).of(FetchData)
        assert "\\Recent" in flags[0].items["FLAGS"]
        # a second APPEND: both are recent for this session
        reply = await c.append("Default", message(2))
        assert [r.count for r in reply.of(RecentData)] == [2]
        # claimed: another session selecting now does not see them as recent
        sel2 = await other.cmd('SELECT "Default"')
        assert [r.count for r in sel2.of(RecentData)] == [0]


async def test_examine_session_does_not_claim_recent(store: MessageStore) -> None:
    async with running_server(store=store) as srv, srv.client() as reader, srv.client() as c:
        await reader.login()
        await c.login()
        assert (await c.cmd('CREATE "Default"')).ok
        assert (await reader.cmd('EXAMINE "Default"')).ok
        assert (await c.append("Default", message(1))).ok
        noop = await reader.cmd("NOOP")
        assert [r.count for r in noop.of(ExistsData)] == [1]
        assert [r.count for r in noop.of(RecentData)] == [0]
        sel = await c.cmd('SELECT "Default"')  # still unclaimed: the read-write session gets it
        assert [r.count for r in sel.of(RecentData)] == [1]
