"""RFC 7162 CONDSTORE over the wire: HIGHESTMODSEQ, MODSEQ fetch, CHANGEDSINCE, UNCHANGEDSINCE."""

from __future__ import annotations

from server_testlib import Client, Running, message, running_server

from cpmsync.imap import FetchData, SearchData, StatusData, StatusResponse


def _code(reply: object, name: str) -> object:
    for r in [*reply.untagged, reply.tagged]:  # type: ignore[attr-defined]
        if isinstance(r, StatusResponse) and r.code and r.code.name == name:
            return r.code.value
    return None


async def _three(c: Client) -> None:
    await c.login()
    for i in range(3):
        await c.append("INBOX", message(i))


async def test_3_1_1_select_condstore_reports_highestmodseq(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        reply = await c.cmd("SELECT INBOX (CONDSTORE)")
        hm = _code(reply, "HIGHESTMODSEQ")
        st = (await c.cmd("STATUS INBOX (HIGHESTMODSEQ)")).of(StatusData)[0]
        assert isinstance(hm, int) and hm == st.highestmodseq


async def test_3_1_2_2_nomodseq_mailbox(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        srv.store.set_nomodseq("alice", "INBOX", True)
        reply = await c.cmd("SELECT INBOX (CONDSTORE)")
        assert _code(reply, "NOMODSEQ") is None and any(
            isinstance(r, StatusResponse) and r.code and r.code.name == "NOMODSEQ" for r in reply.untagged
        )
        assert (await c.cmd("STATUS INBOX (HIGHESTMODSEQ)")).of(StatusData)[0].highestmodseq == 0


async def test_3_1_4_fetch_modseq_and_changedsince(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("FETCH 1:* (MODSEQ)")).of(FetchData)
        mods = [x.modseq for x in f]
        assert mods == sorted(mods) and len(set(mods)) == 3
        await c.cmd("STORE 2 +FLAGS (\\Flagged)")
        changed = (await c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {mods[-1]})")).of(FetchData)
        assert [(x.seq, "\\Flagged" in x.flags) for x in changed] == [(2, True)]
        assert changed[0].modseq > mods[-1]  # MODSEQ added implicitly


async def test_3_1_3_unchangedsince_conflict_reports_modified(srv: Running) -> None:
    async with srv.client() as a, srv.client() as b:
        await _three(a)
        await b.login()
        await a.cmd("SELECT INBOX (CONDSTORE)")
        await b.cmd("SELECT INBOX (CONDSTORE)")
        base = (await a.cmd("FETCH 1:* (MODSEQ)")).of(FetchData)
        seen = {x.seq: x.modseq for x in base}
        await b.cmd("STORE 2 +FLAGS (\\Seen)")  # b changes message 2 behind a's back
        reply = await a.cmd(f"STORE 1:3 (UNCHANGEDSINCE {max(seen.values())}) +FLAGS (\\Flagged)")
        assert reply.ok and str(reply.tagged.code.value) == "2" and reply.tagged.code.name == "MODIFIED"
        flagged = {x.seq for x in reply.of(FetchData) if "\\Flagged" in (x.flags or ())}
        assert flagged == {1, 3}
        reply = await a.cmd("UID STORE 2 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Answered)")
        assert reply.tagged.code.name == "MODIFIED" and str(reply.tagged.code.value) == "2"


async def test_3_1_3_silent_store_with_condstore_still_reports_modseq(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX (CONDSTORE)")
        reply = await c.cmd("STORE 1 (UNCHANGEDSINCE 999999) +FLAGS.SILENT (\\Deleted)")
        f = reply.of(FetchData)
        assert len(f) == 1 and f[0].modseq is not None and f[0].flags is None


async def test_3_1_5_search_modseq(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX")
        mods = [x.modseq for x in (await c.cmd("FETCH 1:* (MODSEQ)")).of(FetchData)]
        s = (await c.cmd(f"SEARCH MODSEQ {mods[1]}")).of(SearchData)[0]
        assert s.ids == (2, 3) and s.modseq == mods[2]
        s = (await c.cmd(f'SEARCH MODSEQ "/flags/\\\\draft" all {mods[2]}')).of(SearchData)[0]
        assert s.ids == (3,)


async def test_3_1_8_expunge_after_condstore_reports_highestmodseq(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX (CONDSTORE)")
        await c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        reply = await c.cmd("EXPUNGE")
        st = (await c.cmd("STATUS INBOX (HIGHESTMODSEQ)")).of(StatusData)[0]
        assert reply.tagged.code and reply.tagged.code.name == "HIGHESTMODSEQ"
        assert reply.tagged.code.value == st.highestmodseq


async def test_3_2_unsolicited_flag_fetch_includes_modseq(srv: Running) -> None:
    async with srv.client() as a, srv.client() as b:
        await _three(a)
        await b.login()
        await a.cmd("ENABLE CONDSTORE")
        await a.cmd("SELECT INBOX")
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 3 +FLAGS (\\Flagged)")
        f = (await a.cmd("NOOP")).of(FetchData)
        assert len(f) == 1 and f[0].seq == 3 and f[0].modseq and "\\Flagged" in f[0].flags


async def test_condstore_commands_bad_when_switched_off() -> None:
    from server_testlib import make_settings

    off = make_settings(extensions={"condstore": False, "qresync": False, "list_changedsince": False})
    async with running_server(off) as srv, srv.client() as c:
        await _three(c)
        assert (await c.cmd("SELECT INBOX (CONDSTORE)")).status == "BAD"
        await c.cmd("SELECT INBOX")
        assert (await c.cmd("FETCH 1 (MODSEQ)")).status == "BAD"
        assert (await c.cmd("STATUS INBOX (HIGHESTMODSEQ)")).status == "BAD"


async def test_3_1_first_enabling_command_reports_highestmodseq(srv: Running) -> None:
    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX")  # without (CONDSTORE): no HIGHESTMODSEQ yet
        hms = _code(await c.cmd("FETCH 1 MODSEQ"), "HIGHESTMODSEQ")
        assert isinstance(hms, int) and hms > 0
        assert _code(await c.cmd("FETCH 1 MODSEQ"), "HIGHESTMODSEQ") is None  # only the first


async def test_3_1_5_esearch_modseq_with_min_or_max_is_that_of_the_returned_message(srv: Running) -> None:
    from cpmsync.imap import ESearchData

    async with srv.client() as c:
        await _three(c)
        await c.cmd("SELECT INBOX (CONDSTORE)")
        mods = {}
        for seq in (1, 3, 2):  # modseqs in the order 1 < 3 < 2
            mods[seq] = (await c.cmd(f"STORE {seq} +FLAGS (\\Seen)")).of(FetchData)[0].modseq
        (es,) = (await c.cmd("SEARCH RETURN (MIN) MODSEQ 1")).of(ESearchData)
        assert (es.min, es.modseq) == (1, mods[1])
        (es,) = (await c.cmd("SEARCH RETURN (MAX) MODSEQ 1")).of(ESearchData)
        assert (es.max, es.modseq) == (3, mods[3])
        (es,) = (await c.cmd("SEARCH RETURN (COUNT) MODSEQ 1")).of(ESearchData)
        assert (es.count, es.modseq) == (3, mods[2])
