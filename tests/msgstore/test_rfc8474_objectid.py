"""RFC 8474 OBJECTID: MAILBOXID on CREATE/SELECT/STATUS (kept across RENAME), EMAILID kept by COPY,
THREADID NIL when the store does not thread."""

from __future__ import annotations

from server_testlib import Running, message

from cpmsync.imap import FetchData, StatusData, StatusResponse


async def test_4_mailboxid_on_create_status_select_and_rename(srv: Running) -> None:
    async with srv.session() as c:
        reply = await c.cmd("CREATE chat")
        assert reply.tagged.code and reply.tagged.code.name == "MAILBOXID"
        created = reply.tagged.code.value
        assert (await c.cmd("STATUS chat (MAILBOXID)")).of(StatusData)[0].mailboxid == created
        await c.cmd("RENAME chat chat2")
        assert (await c.cmd("STATUS chat2 (MAILBOXID)")).of(StatusData)[0].mailboxid == created
        sel = await c.cmd("SELECT chat2")
        codes = {r.code.name: r.code.value for r in sel.untagged if isinstance(r, StatusResponse) and r.code}
        assert codes["MAILBOXID"] == created
        assert b"[MAILBOXID (" in sel.raw


async def test_5_emailid_survives_copy(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE other")
        await c.append("INBOX", message(1))
        await c.cmd("SELECT INBOX")
        reply = await c.cmd("FETCH 1 (EMAILID THREADID)")
        f = reply.of(FetchData)[0]
        emailid = f.items["EMAILID"]
        assert b"EMAILID (" in reply.raw and (b"THREADID NIL" in reply.raw or b"THREADID (" in reply.raw)
        await c.cmd("COPY 1 other")
        await c.cmd("SELECT other")
        assert (await c.cmd("FETCH 1 (EMAILID)")).of(FetchData)[0].items["EMAILID"] == emailid
