"""RFC 5465 5.1 and the selected mailbox: msgstore behaves as Dovecot 2.3 does, run against both.

Where the RFC leaves room, our server must not be kinder than Dovecot, or a client bug that loses
changes on Dovecot stays hidden in tests that use msgstore. Each test runs the same raw exchange
against both peers and asserts what a client sees on the wire.

Dovecot 2.3.19, seen on the wire (one session with NOTIFY and the mailbox EXAMINEd, another one
APPENDs to it):
- without a `selected` filter: nothing for that mailbox, not even at NOOP; and once a command
  has synced the mailbox (NOOP), nothing after UNSELECT either: the change is never reported;
- with `(selected (MessageNew MessageExpunge FlagChange))`: `* n EXISTS` at the next command.
"""

from __future__ import annotations

import asyncio

from tests.support.peers import ImapPeer
from tests.support.raw_imap import RawImap

MESSAGE = "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
PERSONAL = "(personal (MessageNew MessageExpunge FlagChange MailboxName))"
SELECTED = "(selected (MessageNew MessageExpunge FlagChange))"


async def _append(c: RawImap, box: str) -> None:
    await c.send(f"a1 APPEND {box} {{{len(MESSAGE)}+}}\r\n{MESSAGE}\r\n".encode())
    while not (line := await c.readline()).startswith(b"a1 "):
        assert line, "closed during APPEND"
    assert b" OK " in line, line


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


async def _watcher_and_writer(imap_peer: ImapPeer, notify: str, box: str) -> tuple[RawImap, RawImap]:
    a, w = RawImap(imap_peer.host, imap_peer.port), RawImap(imap_peer.host, imap_peer.port)
    await a.__aenter__()
    await w.__aenter__()
    await a.login(imap_peer.user, imap_peer.password)
    await w.login(imap_peer.user, imap_peer.password)
    await w.command(f"CREATE {box}")
    await a.command("ENABLE QRESYNC")
    await a.command(f"NOTIFY SET {notify}")
    await a.unsolicited(0.2)
    await a.command(f"EXAMINE {box}")
    return a, w


async def test_no_selected_filter_means_no_news_of_the_open_mailbox(imap_peer: ImapPeer) -> None:
    a, w = await _watcher_and_writer(imap_peer, PERSONAL, "open1")
    try:
        await _append(w, "open1")
        await asyncio.sleep(0.3)
        noop = _untagged(await a.command("NOOP"))
        assert not any(b"EXISTS" in x for x in noop), (imap_peer.name, noop)
        await a.command("UNSELECT")
        after = _untagged(await a.unsolicited(0.8))
        assert not any(b"open1" in x for x in after), (imap_peer.name, after)
    finally:
        await a.__aexit__(None, None, None)
        await w.__aexit__(None, None, None)


async def test_selected_filter_reports_new_message_at_next_command(imap_peer: ImapPeer) -> None:
    a, w = await _watcher_and_writer(imap_peer, f"{SELECTED} {PERSONAL}", "open2")
    try:
        await _append(w, "open2")
        lines: list[bytes] = []
        async with asyncio.timeout(10):  # until a command reports it (the server may take a moment)
            while b"* 1 EXISTS\r\n" not in lines:
                lines += _untagged(await a.unsolicited(0.05)) + _untagged(await a.command("NOOP"))
        # Not also as STATUS: the selected mailbox is reported as such (RFC 5465 5.1).
        assert not any(x.startswith(b"* STATUS open2") for x in lines), (imap_peer.name, lines)
    finally:
        await a.__aexit__(None, None, None)
        await w.__aexit__(None, None, None)


async def test_other_mailboxes_still_come_as_status_while_one_is_open(imap_peer: ImapPeer) -> None:
    a, w = await _watcher_and_writer(imap_peer, f"{SELECTED} {PERSONAL}", "open3")
    try:
        await w.command("CREATE other3")
        await a.unsolicited(0.3)
        await _append(w, "other3")
        lines = _untagged(await a.unsolicited(1.0)) + _untagged(await a.command("NOOP"))
        assert any(
            x.replace(b'"', b"").startswith(b"* STATUS other3 (") and b"MESSAGES 1" in x for x in lines
        ), (imap_peer.name, lines)
    finally:
        await a.__aexit__(None, None, None)
        await w.__aexit__(None, None, None)


async def test_rename_of_the_open_mailbox_is_announced(imap_peer: ImapPeer) -> None:
    """MailboxName news is not message news: a rename of the mailbox the session has open is
    announced as LIST with OLDNAME, as for any other mailbox. Dovecot 2.3.19 does so (and then
    ends the session at its next command: "IMAP session state is inconsistent, please relogin").
    msgstore renamed silently: the daemon had the folder EXAMINEd for a flag change when another
    client renamed it, and kept the old name for good (found by the 10-minute soak)."""
    a, w = await _watcher_and_writer(imap_peer, f"{SELECTED} {PERSONAL}", "open3")
    try:
        await w.command("RENAME open3 open3b")
        lines: list[bytes] = []
        async with asyncio.timeout(10):
            while not any(b"open3b" in x for x in lines):
                lines += await a.unsolicited(0.2)
        news = [x for x in lines if b"open3b" in x]
        assert news[0].startswith(b"* LIST ") and b"OLDNAME" in news[0] and b"open3" in news[0], lines
    finally:
        await a.__aexit__(None, None, None)
        await w.__aexit__(None, None, None)
