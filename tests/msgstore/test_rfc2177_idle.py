"""RFC 2177 IDLE across two connections: another session's changes arrive while idling."""

from __future__ import annotations

from server_testlib import Client, Running, make_settings, message, running_server

from cpmsync.imap import ContinuationRequest, ExistsData, ExpungeData, FetchData, StatusResponse


async def _idle(c: Client) -> None:
    await c.send(b"i1 IDLE\r\n")
    assert isinstance(await c.next_response(), ContinuationRequest)


async def _done(c: Client) -> StatusResponse:
    await c.send(b"DONE\r\n")
    got = await c.wait_for(lambda r: isinstance(r, StatusResponse) and r.tag == "i1")
    return got[-1]


async def test_idle_delivers_exists_from_another_session(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await a.cmd("SELECT INBOX")
        await _idle(a)
        await b.append("INBOX", message(1))
        r = await a.next_response()
        assert isinstance(r, ExistsData) and r.count == 1
        assert (await _done(a)).status == "OK"


async def test_idle_delivers_flags_and_expunge(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        for i in range(2):
            await b.append("INBOX", message(i))
        await a.cmd("SELECT INBOX")
        await b.cmd("SELECT INBOX")
        await _idle(a)
        await b.cmd("STORE 1 +FLAGS (\\Flagged)")
        got = await a.wait_for(lambda r: isinstance(r, FetchData))
        assert got[-1].seq == 1 and "\\Flagged" in got[-1].flags
        await b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
        await b.cmd("EXPUNGE")
        got = await a.wait_for(lambda r: isinstance(r, ExpungeData))
        assert got[-1].seq == 2
        await _done(a)
        assert (await a.cmd("FETCH 1:* UID")).of(FetchData)[0].uid == 1


async def test_idle_ignores_changes_in_other_mailboxes_and_other_users(srv: Running) -> None:
    async with srv.client() as a, srv.client() as b, srv.client() as bob:
        await a.login()
        await b.login()
        await bob.login("bob")
        await b.cmd("CREATE other")
        await a.cmd("SELECT INBOX")
        await _idle(a)
        await b.append("other", message(1))
        await bob.append("INBOX", message(1))
        await b.append("INBOX", message(2))  # the only one a must hear about
        r = await a.next_response()
        assert isinstance(r, ExistsData) and r.count == 1


async def test_idle_done_then_commands_work_and_bad_continuation(srv: Running) -> None:
    async with srv.session() as a:
        await a.cmd("SELECT INBOX")
        await _idle(a)
        await a.send(b"NOT-DONE\r\n")
        r = await a.wait_for(lambda r: isinstance(r, StatusResponse) and r.tag == "i1")
        assert r[-1].status == "BAD"
        assert (await a.cmd("NOOP")).ok


async def test_no_keepalive_by_default_and_configurable_keepalive() -> None:
    settings = make_settings(server={"idle_keepalive_s": 1})
    async with running_server(settings) as srv, srv.client() as a:
        await a.login()
        await _idle(a)
        r = await a.next_response()
        assert isinstance(r, StatusResponse) and r.tag is None and r.status == "OK"
        await _done(a)


async def test_idle_in_authenticated_state_is_allowed(srv: Running) -> None:
    async with srv.session() as a:
        await _idle(a)
        assert (await _done(a)).status == "OK"


async def test_selected_mailbox_deleted_by_another_session(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await b.cmd("CREATE doomed")
        await b.append("doomed", message(1))
        await a.cmd("SELECT doomed")
        await _idle(a)
        await b.cmd("DELETE doomed")
        got = await a.wait_for(lambda r: isinstance(r, ExpungeData))
        assert got[-1].seq == 1
        await _done(a)
        assert (await a.cmd("FETCH 1:* FLAGS")).ok  # empty view, no crash
        assert (await a.append("INBOX", message(2))).ok
        assert (await a.cmd("NOOP")).ok
