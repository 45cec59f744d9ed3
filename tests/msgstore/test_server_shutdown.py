"""Stopping the server (SIGTERM in the CLI, `ImapServer.stop()` here): each session finishes the
command it is running, gets "* BYE", and is closed; nothing it was told OK about is lost."""

from __future__ import annotations

import asyncio

from server_testlib import message, running_server

from cpmsync.imap import ContinuationRequest, FetchData, StatusResponse


async def test_stop_finishes_running_command_then_says_bye() -> None:
    async with running_server() as srv, srv.client() as c, srv.client() as idler:
        await c.login()
        for i in range(80):
            await c.append("INBOX", message(i, body="x" * 2000))
        await c.cmd("SELECT INBOX")
        await idler.login()
        await idler.send(b"i IDLE\r\n")
        assert isinstance(await idler.next_response(), ContinuationRequest)

        await c.send(b"f1 FETCH 1:* (BODY.PEEK[])\r\n")
        got = [await c.next_response()]  # the command is running: its first batch is out
        assert isinstance(got[0], FetchData)
        srv.server.stop()
        got += await c.wait_for(lambda r: isinstance(r, StatusResponse) and r.status == "BYE", limit=200)
        tagged = [r for r in got if isinstance(r, StatusResponse) and r.tag == "f1"]
        assert tagged and tagged[0].status == "OK"  # the command finished before the BYE
        assert len([r for r in got if isinstance(r, FetchData)]) == 80
        bye = await idler.next_response()
        assert isinstance(bye, StatusResponse) and bye.status == "BYE"
        assert await asyncio.wait_for(c.reader.read(), 5) == b""
        assert srv.store.status("alice", "INBOX").messages == 80


async def test_no_new_connections_after_stop() -> None:
    async with running_server() as srv:
        srv.server.stop()
        for _ in range(100):
            if srv.server.session_count == 0:
                break
            await asyncio.sleep(0.01)
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(srv.host, srv.port), 2)
        except OSError:
            return  # refused: the listener is closed
        data = await asyncio.wait_for(r.read(), 5)
        w.close()
        assert not data.startswith(b"* OK")


async def test_client_that_stopped_reading_cannot_block_shutdown(monkeypatch: object) -> None:
    import cpmsync.msgstore.server as server_module

    monkeypatch.setattr(server_module, "SHUTDOWN_GRACE_S", 0.5)  # type: ignore[attr-defined]
    async with running_server() as srv:
        big = message(1, body="y" * 400_000)
        for _ in range(40):
            srv.store.append("alice", "INBOX", big)
        async with srv.session() as c:
            await c.cmd("SELECT INBOX")
            await c.send(b"f FETCH 1:* BODY.PEEK[]\r\n")  # ~16 MB the client never reads
            await asyncio.sleep(0.3)
            srv.server.stop()
            for _ in range(200):  # the session is cut after the grace period, stop() completes
                if srv.server.session_count == 0:
                    break
                await asyncio.sleep(0.02)
            assert srv.server.session_count == 0
