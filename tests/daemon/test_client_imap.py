"""The daemon's IMAP client against a real Dovecot; the TCP proxy in front of it is there only to
pause, cut or corrupt the stream (no real server does that on demand)."""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

import pytest
from daemon_sync_helpers import other_client, wait_until
from imapclient import IMAPClient

from cpmsync.daemon.imap_client import (
    ImapClient,
    ImapCommandError,
    ImapConnectionLost,
    ImapTimeout,
)
from cpmsync.daemon.push import NOTIFY_SET
from cpmsync.imap import AppendCommand, ExistsData, ListData, NoopCommand, SelectCommand, StatusData
from cpmsync.imap.compress import MAX_INFLATE_STEP_BYTES
from cpmsync.imap.state import ConnState, SubState

pytestmark = pytest.mark.dovecot


def _other(acct: Any) -> IMAPClient:
    return other_client(acct.host, acct.port, acct.user, acct.password)


async def test_login_capabilities_enable_compress(dovecot_account: Any) -> None:
    acct = dovecot_account
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        assert imap.has("QRESYNC") and imap.has("notify")  # CAPABILITY re-read after login
        assert await imap.enable("QRESYNC") == {"QRESYNC"}
        assert await imap.compress()
        lists, statuses = await imap.list_folders("*", return_status=("MESSAGES", "UIDNEXT"))
        assert [x.name for x in lists] == ["INBOX"] and statuses["INBOX"].messages == 0
        assert imap.counters.wire_in < imap.counters.imap_in  # deflate on the socket
        res = await imap.execute(NoopCommand(""))
        assert res.bytes.imap_out == len(b"C7 NOOP\r\n") and 0 < res.bytes.wire_out < 20


async def test_the_connection_state_follows_the_answers(dovecot_account: Any) -> None:
    """RFC 3501 section 3 as the client sees it, moved by the server's answers and nothing else."""
    acct = dovecot_account
    _other(acct).create_folder("A")
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        assert (imap.state.state, imap.selected) == (ConnState.NOT_AUTHENTICATED, None)
        with pytest.raises(ImapCommandError):
            await imap.login(acct.user, "wrong")
        assert imap.state.state is ConnState.NOT_AUTHENTICATED and imap.state.sub is SubState.NONE
        await imap.login(acct.user, acct.password)
        assert imap.state.state is ConnState.AUTHENTICATED
        await imap.select(SelectCommand("", "A", readonly=True))
        assert (imap.state.state, imap.selected) == (ConnState.SELECTED, "A")
        async with imap.idle():
            assert imap.state.sub is SubState.IDLE
        assert imap.state.sub is SubState.NONE and imap.selected == "A"
        with pytest.raises(ImapCommandError):
            await imap.select(SelectCommand("", "missing", readonly=True))
        assert (imap.state.state, imap.selected) == (ConnState.AUTHENTICATED, None)  # RFC 3501 6.3.1
        await imap.select(SelectCommand("", "INBOX", readonly=True))
        await imap.unselect()
        assert (imap.state.state, imap.selected) == (ConnState.AUTHENTICATED, None)
        await imap.logout()
        assert imap.state.state is ConnState.LOGOUT


def test_plaintext_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="allow_plaintext"):
        ImapClient("mail.example.org", 143, tls="none")
    ImapClient("mail.example.org", 143, tls="none", allow_plaintext=True)


async def test_unsolicited_response_during_a_command_goes_to_the_push_queue(dovecot_account: Any) -> None:
    acct = dovecot_account
    c = _other(acct)
    c.create_folder("A")
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        await imap.select(SelectCommand("", "A", readonly=True))
        c.append("A", b"Subject: new\r\n\r\nhi\r\n")  # -> "* 1 EXISTS" on our next command
        lists, _ = await imap.list_folders("*")
        await imap.noop()
        assert all(isinstance(x, ListData) for x in lists)
        news = imap.push.drain()
        assert any(type(e.response).__name__ == "ExistsData" and e.selected == "A" for e in news)
    c.logout()


async def test_notify_news_during_idle_arrive_in_order(dovecot_account: Any) -> None:
    acct = dovecot_account
    c = _other(acct)
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        await imap.enable("QRESYNC")
        await imap.notify_set(NOTIFY_SET)
        async with imap.idle():
            c.append("INBOX", b"Subject: one\r\n\r\nhi\r\n")
            async with asyncio.timeout(10):
                ev = await anext(imap.push)
                while not isinstance(ev.response, StatusData):
                    ev = await anext(imap.push)
        assert ev.response.mailbox == "INBOX"
    c.logout()


async def test_after_news_the_next_command_goes_out_behind_done_without_its_round_trip(
    imap_peer: Any, fault_proxy_factory: Any
) -> None:
    """News ended the IDLE: DONE does not wait for IDLE's answer (a cellular round trip, 50-70 ms,
    on the way from a change to its event); the EXAMINE goes out behind it and both are answered,
    in order, on either server."""
    peer = imap_peer
    c = other_client(peer.host, peer.port, peer.user, peer.password)
    px = await fault_proxy_factory(peer.host, peer.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(peer.user, peer.password)
        await imap.enable("QRESYNC")
        await imap.notify_set(NOTIFY_SET)
        async with imap.idle() as end:
            c.append("INBOX", b"Subject: one\r\n\r\nhi\r\n")
            async with asyncio.timeout(10):
                await imap.push.wait()
            px.pause()  # the server's answer to DONE cannot arrive before the EXAMINE is sent
            end.wait_for_answer = False
        assert imap.in_flight == 1  # the IDLE, still unanswered
        examine = asyncio.create_task(imap.select(SelectCommand("", "INBOX", readonly=True)))
        await wait_until(lambda: imap.in_flight == 2)  # sent behind DONE, not after its answer
        px.resume()
        async with asyncio.timeout(10):
            res = await examine
        assert imap.in_flight == 0 and imap.selected == "INBOX"
        assert any(isinstance(r, ExistsData) and r.count == 1 for r in res.responses)
        await imap.noop()  # the connection carries on: every answer was routed to its command
    c.logout()


async def test_cut_fails_every_pending_command_at_once(
    dovecot_account: Any, fault_proxy_factory: Any
) -> None:
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        px.pause()
        tasks = [asyncio.create_task(imap.execute(NoopCommand(""))) for _ in range(3)]
        await wait_until(lambda: imap.in_flight == 1)  # one at a time: the others queue behind it
        await px.cut()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, ImapConnectionLost) for r in results), results
        with pytest.raises(ImapConnectionLost):
            await imap.noop()  # and the client stays closed, clearly
        with pytest.raises(ImapConnectionLost):
            await imap.push.wait()
        with pytest.raises(ImapConnectionLost):
            await anext(imap.push)  # `async for ev in imap.push` ends with the connection


async def test_a_client_is_entered_once(dovecot_account: Any) -> None:
    """One ImapClient is one connection: entering it again is a clear error, not a second socket."""
    acct = dovecot_account
    imap = ImapClient(acct.host, acct.port, tls="none")
    async with imap:
        with pytest.raises(RuntimeError, match="enter it once"):
            await imap.__aenter__()
        await imap.login(acct.user, acct.password)
    assert imap.closed


async def test_command_timeout_closes_the_connection(dovecot_account: Any, fault_proxy_factory: Any) -> None:
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    async with ImapClient(px.host, px.port, tls="none", command_timeout_s=0.3) as imap:
        await imap.login(acct.user, acct.password)
        px.pause()
        with pytest.raises(ImapTimeout):
            await imap.noop()
        assert imap.closed
        px.resume()


@pytest.mark.parametrize("literal_plus", [True, False])
async def test_literals_sync_and_nonsync(dovecot_account: Any, literal_plus: bool) -> None:
    acct = dovecot_account
    body = b"Subject: literal\r\n\r\n" + b"x" * 5000 + b"\r\n"
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        if not literal_plus:  # the synchronizing form waits for "+" before the literal
            imap.capabilities = tuple(c for c in imap.capabilities if c.upper() != "LITERAL+")
        await imap.execute(AppendCommand("", "INBOX", body, flags=("\\Seen",)))
        st = await imap.status("INBOX", ("MESSAGES",))
        assert st is not None and st.messages == 1


async def test_no_answer_raises_with_code(dovecot_account: Any) -> None:
    acct = dovecot_account
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        with pytest.raises(ImapCommandError) as ei:
            await imap.select(SelectCommand("", "missing", readonly=True))
        # Dovecot 2.3 says so in text, no [NONEXISTENT] code; sync.FolderGone handles both.
        assert ei.value.result.status.status == "NO" and "exist" in str(ei.value)
        await imap.noop()  # a NO does not hurt the connection


async def test_malformed_line_one_error_and_typed_close(
    dovecot_account: Any, fault_proxy_factory: Any, caplog: Any
) -> None:
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    caplog.set_level(logging.ERROR, logger="cpmsync")
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        px.replace_next_down_line(b"* 1 FETCH (((\r\n")
        with pytest.raises(ImapConnectionLost, match="malformed"):
            await imap.noop()
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1


@pytest.mark.parametrize("window", [1, 3, 64])
async def test_pipelined_status_matches_one_at_a_time_and_counts_every_byte(
    dovecot_account: Any, window: int
) -> None:
    """STATUS sent ahead of their answers: same values, a folder deleted meanwhile gives None."""
    acct = dovecot_account
    c = _other(acct)
    names = [f"tel:+1514555{i:04d}" for i in range(10)]
    for i, n in enumerate(names):
        c.create_folder(n)
        for _ in range(i % 3):
            c.append(n, b"Subject: x\r\n\r\nhi\r\n")
    c.logout()
    items = ("MESSAGES", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ", "UIDVALIDITY")
    async with ImapClient(acct.host, acct.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        one = {n: await imap.status(n, items) for n in names}
        before = imap.counters.snapshot()
        many = await imap.status_many([*names, "gone"], items, window=window)
        used = imap.counters.since(before)
        assert many == {**one, "gone": None}
        mark = imap.counters.snapshot()
        res = await imap.execute_pipelined([NoopCommand(""), NoopCommand(""), NoopCommand("")], window=window)
        assert [r.status.status for r in res] == ["OK"] * 3
        # each result's bytes add up exactly to what the pipeline moved
        assert sum(r.bytes.imap_out for r in res) == imap.counters.since(mark).imap_out
        assert sum(r.bytes.imap_in for r in res) == imap.counters.since(mark).imap_in
        # the commands and answers are all counted: 11 STATUS commands went out
        assert used.imap_out > 11 * len(b"C1 STATUS x (MESSAGES)\r\n")
        await imap.noop()  # the connection is in step after the pipeline


async def test_cut_fails_a_pipeline_at_once(dovecot_account: Any, fault_proxy_factory: Any) -> None:
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        px.pause()
        task = asyncio.create_task(imap.status_many(["INBOX", "a", "b"], ("MESSAGES",), window=2))
        await wait_until(lambda: imap.in_flight == 2)
        await px.cut()
        with pytest.raises(ImapConnectionLost):
            await task
        assert imap.closed


async def test_news_absorbed_by_a_pending_status_goes_back_to_the_push_queue(
    dovecot_account: Any, fault_proxy_factory: Any
) -> None:
    """A NOTIFY STATUS for a mailbox whose STATUS is in flight is news, not the answer (the proxy
    injects it: Dovecot cannot be made to send one at that exact moment)."""
    acct = dovecot_account
    c = _other(acct)
    c.create_folder("A")
    c.logout()
    px = await fault_proxy_factory(acct.host, acct.port)
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        imap.push.drain()
        px.pause()  # the STATUS commands wait in the proxy, unanswered
        task = asyncio.create_task(imap.status_many(["A", "INBOX"], ("MESSAGES",), window=8))
        await wait_until(lambda: imap.in_flight == 2)
        news_line = b"* STATUS A (MESSAGES 99)\r\n"
        before = imap.counters.wire_in
        px.inject_down(news_line)
        await wait_until(lambda: imap.counters.wire_in >= before + len(news_line))  # read before the answers
        px.resume()
        got = await task
        assert got["A"] is not None and got["A"].messages == 0  # the server's answer
        news = [e.response for e in imap.push.drain()]
        assert [(r.mailbox, r.messages) for r in news if isinstance(r, StatusData)] == [("A", 99)]


async def test_deflate_bomb_meets_the_line_limit_one_bounded_step_at_a_time(
    dovecot_account: Any, fault_proxy_factory: Any
) -> None:
    """After COMPRESS the proxy injects ~1 KiB of deflate that expands to 64 MiB with no line end:
    the client must inflate it in MAX_INFLATE_STEP_BYTES steps and drop the connection at the
    parser's line limit, not allocate the whole expansion first."""
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    expansion = 64 * 2**20
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = packer.compress(b"A" * expansion) + packer.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) * 500 < expansion
    async with ImapClient(px.host, px.port, tls="none") as imap:
        await imap.login(acct.user, acct.password)
        assert await imap.compress()
        fed: list[int] = []
        parser = imap._conn._parser

        class Counting:
            """What the connection hands its parser, step by step (the parser itself is compiled
            by mypyc, whose methods cannot be replaced on an instance)."""

            def feed(self, data: bytes) -> None:
                fed.append(len(data))
                parser.feed(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(parser, name)

        imap._conn._parser = Counting()  # type: ignore[assignment]
        px.inject_down(bomb)
        await px.wait_for(lambda: imap.closed)
        with pytest.raises(ImapConnectionLost, match="max_line_bytes"):
            await imap.noop()
    assert fed and max(fed) <= MAX_INFLATE_STEP_BYTES
    assert sum(fed) <= 2 * MAX_INFLATE_STEP_BYTES < expansion // 16
