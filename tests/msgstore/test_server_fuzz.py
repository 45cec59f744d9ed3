"""Fuzz: hypothesis-generated random and mutated command lines against a live server (in its own
thread). No input may crash the server, and another session keeps working afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testlib import Client, ErrorLog, ThreadServer, make_settings

VALID = [
    b"a CAPABILITY",
    b'a LOGIN alice "alice-pw"',
    b"a SELECT INBOX (CONDSTORE)",
    b'a LIST (SUBSCRIBED CHANGEDSINCE (5)) "" (* %) RETURN (STATUS (UIDNEXT HIGHESTMODSEQ) CHILDREN)',
    b"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>) (CHANGEDSINCE 1 VANISHED)",
    b"a STORE 1:* (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Seen $x)",
    b"a SEARCH OR (FROM x SINCE 1-Jan-2020) NOT MODSEQ 5 UID 1:*",
    b"a NOTIFY SET STATUS (selected (MessageNew (UID) MessageExpunge)) (personal (MailboxName))",
    b"a APPEND INBOX (\\Seen) {5+}\r\nhello",
    b"a NOTIFY SET (selected (MessageNew (UID FLAGS ENVELOPE) MessageExpunge FlagChange))",
    b"a IDLE",
    b"a ENABLE QRESYNC",
    b"a SELECT INBOX (QRESYNC (1 2 1:5 (1:2 1:2)))",
    b"a COPY 1:* x",
    b"a ID NIL",
    b"a AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlLXB3",
    b"a EXPUNGE",
    b"a RENAME a b",
]


_PIECES = [b"(", b")", b'"', b"{9}\r\n", b"*", b"\\", b" ", b"\0", b"\r\n"]


_ERRORS = ErrorLog()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ThreadServer]:
    logger = logging.getLogger("cpmsync.msgstore")
    logger.addHandler(_ERRORS)
    try:
        with ThreadServer(make_settings(limits={"max_line_bytes": 4096, "max_literal_bytes": 4096})) as s:
            s.store.create_mailbox("alice", "x")
            s.store.append("alice", "INBOX", b"Subject: a\r\n\r\nbody\r\n")
            yield s
    finally:
        logger.removeHandler(_ERRORS)


def _no_server_errors() -> None:
    """Checked per example, so hypothesis can shrink an input that makes the server log an ERROR."""
    records, _ERRORS.records = _ERRORS.records, []
    details = [
        r.getMessage() + ("\n" + "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in records
    ]
    assert not details, "\n".join(details)


def _mutate(data: st.DataObject) -> bytes:
    base = bytearray(data.draw(st.sampled_from(VALID)))
    for _ in range(data.draw(st.integers(0, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if not base:
            break
        i = data.draw(st.integers(0, len(base) - 1))
        if op == "flip":
            base[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            base[i:i] = data.draw(
                st.sampled_from([b"(", b")", b'"', b"{9}\r\n", b"*", b"\\", b" ", b"\0", b"\r\n"])
            )
        elif op == "delete":
            del base[i]
        else:
            base[i:i] = base[i : i + data.draw(st.integers(1, 20))]
    return bytes(base)


async def _session(port: int, lines: list[bytes]) -> None:
    async with Client("127.0.0.1", port, timeout_s=5) as c:
        for line in lines:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await c.send(line + b"\r\n")
        with contextlib.suppress(ConnectionError, TimeoutError):
            await c.send(b"\r\nDONE\r\nzz NOOP\r\n")
            await c.wait_for(lambda r: getattr(r, "tag", None) == "zz", limit=10_000)


async def _healthy(port: int) -> None:
    async with Client("127.0.0.1", port, timeout_s=10) as other:
        await other.login("bob")
        assert (await other.cmd("NOOP")).ok
        assert (await other.cmd('LIST "" *')).ok


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_command_lines(fuzz_server: ThreadServer, data: st.DataObject) -> None:
    prefix = [b'a LOGIN alice "alice-pw"', b"b SELECT INBOX"] if data.draw(st.booleans()) else []
    lines = prefix + [_mutate(data) for _ in range(data.draw(st.integers(1, 6)))]
    asyncio.run(_session(fuzz_server.port, lines))
    asyncio.run(_healthy(fuzz_server.port))
    _no_server_errors()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=5))
def test_random_bytes(fuzz_server: ThreadServer, junk: list[bytes]) -> None:
    asyncio.run(_session(fuzz_server.port, junk))
    asyncio.run(_healthy(fuzz_server.port))
    _no_server_errors()
