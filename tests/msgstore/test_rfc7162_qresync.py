"""RFC 7162 QRESYNC over the wire: SELECT (QRESYNC ...) with VANISHED (EARLIER), the VANISHED
fetch modifier, and VANISHED instead of EXPUNGE once enabled."""

from __future__ import annotations

from server_testlib import Client, Running, message

from cpmsync.imap import (
    EnabledData,
    ExistsData,
    ExpungeData,
    FetchData,
    StatusResponse,
    VanishedData,
)


async def _state(c: Client) -> tuple[int, int]:
    reply = await c.cmd("SELECT INBOX (CONDSTORE)")
    codes = {r.code.name: r.code.value for r in reply.untagged if isinstance(r, StatusResponse) and r.code}
    await c.cmd("UNSELECT")
    return int(codes["UIDVALIDITY"]), int(codes["HIGHESTMODSEQ"])  # type: ignore[arg-type]


async def test_3_2_3_enable_qresync(srv: Running) -> None:
    async with srv.session() as c:
        en = (await c.cmd("ENABLE QRESYNC")).of(EnabledData)[0]
        assert en.capabilities == ("QRESYNC",)
        assert (await c.cmd("ENABLE QRESYNC")).of(EnabledData)[0].capabilities == ()


async def test_3_2_5_qresync_param_needs_enable(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd("SELECT INBOX (QRESYNC (1 1))")).status == "BAD"


async def test_3_2_5_select_qresync_vanished_earlier_and_changed_flags(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        for i in range(6):
            await a.append("INBOX", message(i))
        uidvalidity, modseq = await _state(a)
        # while "a" is offline, b flags 2, deletes 3 and 5, adds one
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 2 +FLAGS (\\Flagged)")
        await b.cmd("STORE 3,5 +FLAGS (\\Deleted)")
        await b.cmd("EXPUNGE")
        await b.append("INBOX", message(7))
        await a.cmd("ENABLE QRESYNC")
        reply = await a.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:6))")
        assert reply.ok
        van = reply.of(VanishedData)
        assert len(van) == 1 and van[0].earlier and str(van[0].uids) == "3,5"
        changed = {f.uid: f for f in reply.of(FetchData)}
        assert set(changed) == {2}  # known-uids 1:6 limits the report; 7 is new (EXISTS)
        assert reply.of(ExistsData)[0].count == 5
        assert "\\Flagged" in changed[2].flags and changed[2].modseq > modseq
        assert b"* VANISHED (EARLIER) 3,5\r\n" in reply.raw


async def test_3_2_5_wrong_uidvalidity_gives_full_select(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message())
        await c.cmd("ENABLE QRESYNC")
        reply = await c.cmd("SELECT INBOX (QRESYNC (1 1))")
        assert reply.ok and not reply.of(VanishedData) and not reply.of(FetchData)


async def test_3_2_6_uid_fetch_vanished_modifier(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(4):
            await c.append("INBOX", message(i))
        await c.cmd("ENABLE QRESYNC")
        await c.cmd("SELECT INBOX")
        mods = [f.modseq for f in (await c.cmd("FETCH 1:* (MODSEQ)")).of(FetchData)]
        await c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        reply = await c.cmd("EXPUNGE")
        assert [str(v.uids) for v in reply.of(VanishedData)] == ["1"] and not reply.of(ExpungeData)
        reply = await c.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {mods[-1]} VANISHED)")
        van = reply.of(VanishedData)
        assert len(van) == 1 and van[0].earlier and str(van[0].uids) == "1"
        assert (await c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {mods[-1]} VANISHED)")).status == "BAD"


async def test_3_2_7_unsolicited_vanished_for_other_sessions_expunge(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        for i in range(3):
            await a.append("INBOX", message(i))
        await a.cmd("ENABLE QRESYNC")
        await a.cmd("SELECT INBOX")
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
        await b.cmd("EXPUNGE")
        reply = await a.cmd("NOOP")
        assert [(str(v.uids), v.earlier) for v in reply.of(VanishedData)] == [("2", False)]


async def test_closed_code_when_reselecting(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("ENABLE QRESYNC")
        await c.cmd("SELECT INBOX")
        reply = await c.cmd("EXAMINE INBOX")
        assert any(
            isinstance(r, StatusResponse) and r.code and r.code.name == "CLOSED" for r in reply.untagged
        )
