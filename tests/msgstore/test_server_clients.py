"""Third-party clients doing real work against the server: Python's imaplib, imapclient and
aioimaplib (login, list, select, fetch, store, append, idle). The blocking clients run in a
worker thread while the server runs in the test's event loop."""

from __future__ import annotations

import asyncio
import imaplib

from server_testlib import Running, message


async def test_imaplib_session(srv: Running) -> None:
    def work() -> None:
        m = imaplib.IMAP4("127.0.0.1", srv.port)
        assert m.login("alice", "alice-pw")[0] == "OK"
        assert m.create("Work/Reports")[0] == "OK"
        typ, data = m.list()
        assert typ == "OK" and any(b'"Work/Reports"' in d for d in data if isinstance(d, bytes))
        assert m.append("INBOX", "(\\Flagged)", None, message(1))[0] == "OK"
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])
        typ, data = m.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: message 1" in data[0][1]
        typ, data = m.store("1", "+FLAGS", "(\\Seen)")
        assert typ == "OK" and b"\\Seen" in data[0]
        typ, data = m.uid("SEARCH", None, "SEEN")
        assert data == [b"1"]
        assert m.copy("1", "Work/Reports")[0] == "OK"
        m.close()
        m.logout()

    await asyncio.to_thread(work)


async def test_imapclient_session_with_idle(srv: Running) -> None:
    from imapclient import IMAPClient

    def work() -> None:
        with IMAPClient("127.0.0.1", port=srv.port, ssl=False, timeout=10) as c:
            c.login("alice", "alice-pw")
            assert c.has_capability("CONDSTORE") and c.has_capability("LIST-STATUS")
            c.create_folder("tel:+15143457900")
            c.append("tel:+15143457900", message(1), flags=[b"$Chat"])
            folders = [name for _flags, _d, name in c.list_folders()]
            assert "tel:+15143457900" in folders
            info = c.select_folder("tel:+15143457900")
            assert info[b"EXISTS"] == 1 and b"HIGHESTMODSEQ" in info
            fetched = c.fetch([1], ["FLAGS", "ENVELOPE", "MODSEQ"])
            assert fetched[1][b"ENVELOPE"].subject == b"message 1"
            assert b"$Chat" in fetched[1][b"FLAGS"]
            c.add_flags([1], [b"\\Flagged"])
            assert b"\\Flagged" in c.get_flags([1])[1]
            assert c.search(["FLAGGED"]) == [1]
            c.idle()
            responses = c.idle_check(timeout=0.2)
            c.idle_done()
            assert responses == []
            status = c.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"])
            assert status[b"MESSAGES"] == 0
            c.delete_messages([1])
            c.expunge()
            assert c.search(["ALL"]) == []

    await asyncio.to_thread(work)


async def test_imapclient_idle_sees_other_session(srv: Running) -> None:
    from imapclient import IMAPClient

    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def idler() -> list[object]:
        with IMAPClient("127.0.0.1", port=srv.port, ssl=False, timeout=10) as c:
            c.login("alice", "alice-pw")
            c.select_folder("INBOX")
            c.idle()
            loop.call_soon_threadsafe(started.set)
            got = c.idle_check(timeout=10)
            c.idle_done()
            return got

    task = asyncio.ensure_future(asyncio.to_thread(idler))
    await started.wait()
    async with srv.session() as other:
        await other.append("INBOX", message(1))
    got = await task
    assert (1, b"EXISTS") in got


async def test_aioimaplib_session(srv: Running) -> None:
    import aioimaplib

    c = aioimaplib.IMAP4(host="127.0.0.1", port=srv.port, timeout=10)
    await c.wait_hello_from_server()
    assert (await c.login("alice", "alice-pw")).result == "OK"
    assert (await c.create("Archive")).result == "OK"
    assert (await c.append(message(1), mailbox="INBOX", flags="(\\Seen)")).result == "OK"
    res = await c.list('""', "*")
    assert res.result == "OK" and any(b"Archive" in line for line in res.lines if isinstance(line, bytes))
    assert (await c.select("INBOX")).result == "OK"
    res = await c.fetch("1", "(FLAGS BODY.PEEK[])")
    assert res.result == "OK" and any(
        b"message 1" in bytes(x) for x in res.lines if isinstance(x, bytes | bytearray)
    )
    assert (await c.store("1", "+FLAGS", "(\\Flagged)")).result == "OK"
    assert (await c.uid("copy", "1", "Archive")).result == "OK"

    idle = await c.idle_start(timeout=5)
    async with srv.session() as other:
        await other.append("INBOX", message(2))
    pushed = await c.wait_server_push(timeout=5)
    c.idle_done()
    await asyncio.wait_for(idle, 5)
    assert any(b"EXISTS" in (p if isinstance(p, bytes) else str(p).encode()) for p in pushed)
    bye = await c.logout()
    # RFC 3501 6.1.3: an untagged BYE, then the tagged OK (aioimaplib keeps both).
    assert bye.result == "OK" and bye.lines[0].startswith(b"BYE"), bye
