"""Property: a session that only follows the server's untagged responses (EXISTS, EXPUNGE or
VANISHED, FETCH FLAGS) keeps a view of its mailbox equal to the store, whatever another session
does meanwhile (hypothesis, over the wire, with and without QRESYNC)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testlib import Client, ThreadServer, message

from cpmsync.imap import ExistsData, ExpungeData, FetchData, VanishedData

_users = itertools.count()


@pytest.fixture(scope="module")
def thread_server() -> Iterator[ThreadServer]:
    with ThreadServer(users={}) as s:
        yield s


class View:
    """What a client knows: UIDs in sequence order and their flags."""

    def __init__(self) -> None:
        self.uids: list[int] = []
        self.flags: dict[int, set[str]] = {}
        self.exists = 0

    def apply(self, responses: list[object]) -> None:
        for r in responses:
            if isinstance(r, ExpungeData):
                uid = self.uids.pop(r.seq - 1)
                self.flags.pop(uid, None)
                self.exists -= 1
            elif isinstance(r, VanishedData) and not r.earlier:
                gone = set(r.uids.iter_ints(max(self.uids, default=1)))
                self.uids = [u for u in self.uids if u not in gone]
                self.flags = {u: f for u, f in self.flags.items() if u not in gone}
                self.exists = len(self.uids)
            elif isinstance(r, ExistsData):
                self.exists = r.count
            elif isinstance(r, FetchData) and r.flags is not None:
                uid = r.uid if r.uid is not None else self.uids[r.seq - 1]
                if uid in self.flags:
                    self.flags[uid] = set(r.flags) - {"\\Recent"}

    async def learn_new(self, c: Client) -> None:
        if self.exists > len(self.uids):
            reply = await c.cmd(f"FETCH {len(self.uids) + 1}:* (UID FLAGS)")
            self.apply([r for r in reply.untagged if not isinstance(r, FetchData)])
            for f in reply.of(FetchData):
                if f.uid not in self.flags:
                    self.uids.append(f.uid)
                self.flags[f.uid] = set(f.flags) - {"\\Recent"}


_STORE = {"flag": "+FLAGS ($Seen$)", "unflag": "-FLAGS ($Seen$)", "delete": "+FLAGS (\\Deleted)"}
_OPS = st.lists(
    st.tuples(st.sampled_from(["append", "flag", "unflag", "delete", "expunge"]), st.integers(1, 6)),
    min_size=1,
    max_size=15,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, qresync=st.booleans(), idle=st.booleans())
def test_view_follows_other_sessions_changes(
    thread_server: ThreadServer, ops: list[tuple[str, int]], qresync: bool, idle: bool
) -> None:
    user = f"p{next(_users)}"
    thread_server.store.add_user(user, "pw")
    for i in range(3):
        thread_server.store.append(user, "INBOX", message(i))

    async def scenario() -> None:
        async with Client("127.0.0.1", thread_server.port) as a, Client("127.0.0.1", thread_server.port) as b:
            await a.cmd(f"LOGIN {user} pw")
            await b.cmd(f"LOGIN {user} pw")
            if qresync:
                await a.cmd("ENABLE QRESYNC")
            view = View()
            view.apply((await a.cmd("SELECT INBOX")).untagged)
            await view.learn_new(a)
            await b.cmd("SELECT INBOX")
            for op, n in ops:
                if op == "append":
                    await b.append("INBOX", message(n))
                elif op in ("flag", "unflag", "delete"):
                    flag = {
                        "flag": "+FLAGS ($Seen$)",
                        "unflag": "-FLAGS ($Seen$)",
                        "delete": "+FLAGS (\\Deleted)",
                    }
                    await b.cmd(f"STORE {n}:* {flag[op]}")
                else:
                    await b.cmd("EXPUNGE")
                if idle:
                    await a.send(b"i IDLE\r\n")
                    await a.next_response()  # "+ idling"
                    await a.send(b"DONE\r\n")
                    got = await a.wait_for(lambda r: getattr(r, "tag", None) == "i", limit=1000)
                    view.apply(got)
                else:
                    view.apply((await a.cmd("NOOP")).untagged)
                await view.learn_new(a)
            truth = (await b.cmd("UID FETCH 1:* (FLAGS)")).of(FetchData)
            assert view.uids == [f.uid for f in truth]
            assert view.flags == {f.uid: set(f.flags) - {"\\Recent"} for f in truth}

    asyncio.run(scenario())
