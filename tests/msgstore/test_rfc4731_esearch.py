"""RFC 4731 ESEARCH over the wire: SEARCH RETURN (MIN MAX COUNT ALL), UID SEARCH, the capability
and its switch."""

from __future__ import annotations

from server_testlib import Client, Running, make_settings, message, running_server

from cpmsync.imap import CapabilityData, ESearchData, SearchData


async def _five(c: Client) -> None:
    """Five messages, 2 and 4 \\Seen, message 3 expunged: sequence numbers 1-4, UIDs 1 2 4 5."""
    await c.login()
    for i in range(1, 6):
        await c.append("INBOX", message(i), "\\Seen" if i in (2, 4) else "")
    await c.cmd("SELECT INBOX")
    await c.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)")
    await c.cmd("EXPUNGE")


async def test_2_capability_advertised(srv: Running) -> None:
    async with srv.client() as c:
        assert "ESEARCH" in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities


async def test_3_1_min_max_count_all(srv: Running) -> None:
    async with srv.client() as c:
        await _five(c)
        reply = await c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) ALL")
        assert reply.of(SearchData) == []
        (es,) = reply.of(ESearchData)
        assert (es.uid, es.min, es.max, es.count, str(es.items["ALL"])) == (False, 1, 4, 4, "1:4")
        assert b'* ESEARCH (TAG "' in reply.raw


async def test_3_1_empty_return_list_means_all(srv: Running) -> None:
    async with srv.client() as c:
        await _five(c)
        (es,) = (await c.cmd("SEARCH RETURN () SEEN")).of(ESearchData)
        assert list(es.items) == ["ALL"] and str(es.items["ALL"]) == "2:3"


async def test_3_1_uid_search_returns_uids(srv: Running) -> None:
    async with srv.client() as c:
        await _five(c)
        (es,) = (await c.cmd("UID SEARCH RETURN (MIN MAX ALL) NOT SEEN")).of(ESearchData)
        assert es.uid and (es.min, es.max, str(es.items["ALL"])) == (1, 5, "1,5")


async def test_3_1_no_match_gives_count_zero_and_nothing_else(srv: Running) -> None:
    async with srv.client() as c:
        await _five(c)
        (es,) = (await c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) KEYWORD $none")).of(ESearchData)
        assert es.items == {"COUNT": 0}


async def test_3_1_unknown_return_option_is_bad(srv: Running) -> None:
    async with srv.client() as c:
        await _five(c)
        assert (await c.cmd("SEARCH RETURN (SAVE2) ALL")).status == "BAD"
        assert (await c.cmd("NOOP")).ok


async def test_switched_off_not_advertised_and_return_is_bad() -> None:
    async with running_server(make_settings(extensions={"esearch": False})) as srv, srv.client() as c:
        assert "ESEARCH" not in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        await _five(c)
        assert (await c.cmd("SEARCH RETURN (COUNT) ALL")).status == "BAD"
        assert (await c.cmd("SEARCH ALL")).of(SearchData)[0].ids == (1, 2, 3, 4)
