"""The private Dovecot the msgstore, daemon and bench comparisons rely on, checked with imaplib."""

from __future__ import annotations

import imaplib
import re
import socket
from collections.abc import Callable

import pytest

import tests.support.dovecot as dovecot_mod
from tests.support import DovecotMissingError, DovecotServer, port_open, seed_dovecot
from tests.support.dovecot import DOVECOT_CAPABILITIES
from tests.support.fixtures import start_dovecot_or_fail
from tests.support.processes import group_members

REQUIRED_CAPABILITIES = {
    "IMAP4REV1",
    "CONDSTORE",
    "QRESYNC",
    "LIST-STATUS",
    "NOTIFY",
    "IDLE",
    "ENABLE",
    "COMPRESS=DEFLATE",
    "LITERAL+",
    "LIST-EXTENDED",
}


def _login(dv: DovecotServer, user: str = "alice") -> imaplib.IMAP4:
    m = imaplib.IMAP4(dv.host, dv.port, timeout=10)
    m.login(user, dv.password(user))
    return m


def test_capabilities_after_login_include_the_extensions_cpmsync_compares(dovecot: DovecotServer) -> None:
    m = _login(dovecot)
    typ, data = m.capability()
    assert typ == "OK"
    caps = set(data[0].decode().upper().split())
    assert REQUIRED_CAPABILITIES <= caps, REQUIRED_CAPABILITIES - caps
    assert "LIST-CHANGEDSINCE" not in caps  # the point of the comparison
    m.logout()


def test_list_status_returns_messages_and_highestmodseq_per_folder(dovecot: DovecotServer) -> None:
    seeded = seed_dovecot(dovecot, "alice", folders=30, messages_per_folder=2)
    m = _login(dovecot)
    typ, _ = m._simple_command("LIST", '""', "*", "RETURN", "(STATUS (MESSAGES HIGHESTMODSEQ))")
    assert typ == "OK"
    statuses = [s.decode() for s in m.untagged_responses.get("STATUS", []) if isinstance(s, bytes)]
    m.logout()
    by_name = {}
    for line in statuses:
        match = re.fullmatch(r'"?(.*?)"? \(MESSAGES (\d+) HIGHESTMODSEQ (\d+)\)', line)
        assert match, line
        by_name[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    for name in seeded.folders:
        assert by_name[name][0] == 2, name
        assert by_name[name][1] > 0


def test_an_append_on_a_second_connection_is_seen_by_idle_on_the_first(dovecot: DovecotServer) -> None:
    watcher = _login(dovecot)
    watcher.select("INBOX")
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.readline().startswith(b"+")

    writer = _login(dovecot)
    typ, _ = writer.append("INBOX", None, None, b"Subject: hi\r\n\r\nhello\r\n")
    assert typ == "OK"
    writer.logout()

    line = watcher.readline()  # socket timeout (10 s) bounds the wait
    assert re.fullmatch(rb"\* 1 EXISTS\r\n", line), line
    watcher.send(b"DONE\r\n")
    while not (line := watcher.readline()).startswith(b"i1 "):
        pass
    assert line.startswith(b"i1 OK")
    watcher.logout()


def _assert_idle_keepalive(m: imaplib.IMAP4) -> None:
    """In IDLE the next line after the continuation is Dovecot's keep-alive."""
    m.select("INBOX")
    m.send(b"i1 IDLE\r\n")
    assert m.readline().startswith(b"+")
    assert m.readline().startswith(b"* OK Still here")
    m.send(b"DONE\r\n")
    m.readline()
    m.logout()


def test_idle_keepalive_interval_is_configurable(dovecot_factory: Callable[..., DovecotServer]) -> None:
    dv = dovecot_factory(idle_notify_interval_s=1)
    _assert_idle_keepalive(_login(dv))


def test_each_user_sees_only_their_own_mailboxes(dovecot: DovecotServer) -> None:
    alice = _login(dovecot, "alice")
    alice.create("alice-only")
    bob = _login(dovecot, "bob")
    _, listing = bob.list()
    assert not any(b"alice-only" in line for line in listing if line)
    alice.logout()
    bob.logout()


def test_accounts_added_to_a_running_server_can_log_in(dovecot: DovecotServer) -> None:
    dovecot.add_user("dave", "dave-pw")
    m = _login(dovecot, "dave")
    assert m.create("mine")[0] == "OK"
    m.logout()


def test_stop_ends_every_dovecot_process_and_frees_the_port() -> None:
    dv = start_dovecot_or_fail()
    pid = dv.pid
    assert pid is not None
    try:
        with socket.create_connection((dv.host, dv.port)) as s:
            assert s.makefile("rb").readline().startswith(b"* OK")
    finally:
        dv.close()
    assert group_members(pid) == {}
    assert not port_open(dv.host, dv.port)
    assert not dv.root.exists()


def test_a_missing_dovecot_fails_the_test_with_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_mod, "DOVECOT_BIN", "/nonexistent/dovecot")
    with pytest.raises(DovecotMissingError, match="apt-get install dovecot-imapd"):
        DovecotServer().start()
    with pytest.raises(pytest.fail.Exception, match="dovecot-imapd"):
        start_dovecot_or_fail()


def test_restart_keeps_port_and_mail(dovecot: DovecotServer) -> None:
    m = _login(dovecot)
    m.create("kept")
    m.logout()
    port = dovecot.port
    dovecot.stop()
    assert not port_open(dovecot.host, port)
    dovecot.start()
    assert dovecot.port == port
    m = _login(dovecot)
    _, listing = m.list()
    assert any(line.endswith(b" kept") for line in listing if isinstance(line, bytes))
    m.logout()


def test_the_known_capability_list_matches_this_dovecot(dovecot: DovecotServer) -> None:
    # drop_capabilities rewrites this list; if Dovecot's own changes, this says so.
    m = _login(dovecot)
    _, data = m.capability()
    m.logout()
    assert data[0].decode().split() == list(DOVECOT_CAPABILITIES)


def test_dropped_capabilities_are_not_advertised(dovecot_factory: Callable[..., DovecotServer]) -> None:
    dv = dovecot_factory(drop_capabilities=("NOTIFY", "LIST-STATUS"))
    m = _login(dv)
    _, data = m.capability()
    caps = set(data[0].decode().upper().split())
    m.logout()
    assert "NOTIFY" not in caps and "LIST-STATUS" not in caps
    assert {"CONDSTORE", "QRESYNC", "IDLE"} <= caps


@pytest.mark.parametrize("seeded", [False, True])
def test_notify_reports_an_append_to_another_mailbox(dovecot: DovecotServer, seeded: bool) -> None:
    # Dovecot's NOTIFY for non-selected mailboxes relies on its mailbox list index, which the
    # seeder bypasses and then drops; NOTIFY must still work afterwards.
    if seeded:
        seed_dovecot(dovecot, "alice", folders=20, messages_per_folder=1)
    watcher = _login(dovecot)
    watcher.create("Other")
    watcher.send(b"n1 NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n")
    while not (line := watcher.readline()).startswith(b"n1 "):
        pass
    assert line.startswith(b"n1 OK"), line
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.readline().startswith(b"+")

    writer = _login(dovecot)
    assert writer.append("Other", None, None, b"Subject: hi\r\n\r\nhello\r\n")[0] == "OK"
    writer.logout()

    # Other events may come first (e.g. "* LIST" for an INBOX Dovecot creates on first use);
    # the socket timeout (10 s) bounds the wait.
    events = [watcher.readline()]
    while not events[-1].startswith(b"* STATUS Other "):
        assert events[-1].startswith(b"* "), events
        events.append(watcher.readline())
    assert b"MESSAGES 1" in events[-1] or b"UIDNEXT 2" in events[-1], events
    watcher.send(b"DONE\r\n")
    while not watcher.readline().startswith(b"i1 "):
        pass
    watcher.logout()


def test_per_user_settings_apply_from_the_next_login(dovecot: DovecotServer) -> None:
    dovecot.set_user_settings("bob", {"imap_idle_notify_interval": "1s"})
    _assert_idle_keepalive(_login(dovecot, "bob"))
