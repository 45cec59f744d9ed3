"""Robustness: three sessions of one user run random valid commands at the same time (create,
delete and rename the mailboxes others have selected, move, expunge, NOTIFY, IDLE...). Every
command gets its tagged reply, the server logs no error, and a fresh session still works."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testlib import Client, ErrorLog, ThreadServer, message

from cpmsync.imap import ContinuationRequest, StatusResponse

COMMANDS = [
    "SELECT {m}",
    "EXAMINE {m}",
    "SELECT {m} (CONDSTORE)",
    "CREATE {m}",
    "DELETE {m}",
    "RENAME {m} {n}",
    "SUBSCRIBE {m}",
    "APPEND",
    "STORE 1:* +FLAGS (\\Deleted)",
    "UID STORE 1:* -FLAGS (\\Deleted)",
    "STORE 1 (UNCHANGEDSINCE 3) +FLAGS ($x)",
    "EXPUNGE",
    "UID EXPUNGE 1:*",
    "MOVE 1:* {m}",
    "COPY 1 {m}",
    "FETCH 1:* (UID FLAGS MODSEQ ENVELOPE BODY.PEEK[HEADER])",
    "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 2)",
    "SEARCH OR SEEN DELETED",
    'LIST (CHANGEDSINCE (2)) "" * RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))',
    'LIST "" * RETURN (CHILDREN STATUS (MESSAGES))',
    "STATUS {m} (MESSAGES HIGHESTMODSEQ MAILBOXID)",
    "NOTIFY SET STATUS (selected (MessageNew (UID) MessageExpunge FlagChange))"
    " (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))",
    "NOTIFY NONE",
    "ENABLE QRESYNC",
    "IDLE",
    "CLOSE",
    "UNSELECT",
    "NOOP",
]
MAILBOXES = ["INBOX", "a", "a/b", "c", "tel:+1514"]


_ERRORS = ErrorLog()
_users = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    logger = logging.getLogger("cpmsync.msgstore")
    logger.addHandler(_ERRORS)
    try:
        with ThreadServer(users={}) as s:
            yield s
    finally:
        logger.removeHandler(_ERRORS)


async def _run(port: int, user: str, script: list[tuple[int, int, int]]) -> None:
    async with Client("127.0.0.1", port, timeout_s=20) as c:
        await c.cmd(f"LOGIN {user} pw")
        for i, (cmd_i, m_i, n_i) in enumerate(script):
            text = COMMANDS[cmd_i].format(m=f'"{MAILBOXES[m_i]}"', n=f'"{MAILBOXES[n_i]}2"')
            if text == "APPEND":
                reply = await c.append(MAILBOXES[m_i], message(i))
            elif text == "IDLE":
                tag = f"i{i}"
                await c.send(f"{tag} IDLE\r\n".encode())
                await c.wait_for(lambda r: isinstance(r, ContinuationRequest | StatusResponse), 10_000)
                await asyncio.sleep(0.01)
                await c.send(b"DONE\r\n")
                await c.wait_for(lambda r, t=tag: isinstance(r, StatusResponse) and r.tag == t, 10_000)
                continue
            else:
                reply = await c.cmd(text)
            assert reply.status in ("OK", "NO", "BAD"), reply
            assert not (reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "SERVERBUG")


_SCRIPT = st.lists(
    st.tuples(
        st.integers(0, len(COMMANDS) - 1),
        st.integers(0, len(MAILBOXES) - 1),
        st.integers(0, len(MAILBOXES) - 1),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scripts=st.lists(_SCRIPT, min_size=3, max_size=3))
def test_three_sessions_random_commands(
    server: ThreadServer, scripts: list[list[tuple[int, int, int]]]
) -> None:
    user = f"i{next(_users)}"
    server.store.add_user(user, "pw")
    server.store.create_mailbox(user, "a/b")
    server.store.append(user, "INBOX", message(0))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for script in scripts:
                tg.create_task(_run(server.port, user, script))
        async with Client("127.0.0.1", server.port) as fresh:
            await fresh.cmd(f"LOGIN {user} pw")
            assert (await fresh.cmd('LIST "" *')).ok

    asyncio.run(main())
    records, _ERRORS.records = _ERRORS.records, []
    details = [
        r.getMessage() + ("\n" + "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in records
    ]
    assert not details, "\n".join(details)
    with contextlib.suppress(Exception):
        server.store.delete_user(user)
