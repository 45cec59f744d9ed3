"""Seeding Dovecot fast and faithfully (the benches compare servers on this data)."""

from __future__ import annotations

import imaplib
from collections.abc import Callable

import pytest

from tests.support import DovecotServer, seed_dovecot, seed_imap
from tests.support.fixtures import DovecotAccount


def _status(dv: DovecotServer, user: str) -> dict[str, int]:
    m = imaplib.IMAP4(dv.host, dv.port, timeout=60)
    m.login(user, dv.password(user))
    typ, _ = m._simple_command("LIST", '""', "*", "RETURN", "(STATUS (MESSAGES))")
    assert typ == "OK"
    out = {}
    for raw in m.untagged_responses.get("STATUS", []):
        assert isinstance(raw, bytes)
        line = raw.decode()
        name, _, rest = line.rpartition(" (MESSAGES ")
        out[name.strip('"')] = int(rest.rstrip(")"))
    m.logout()
    return out


def test_seed_dovecot_creates_every_folder_with_its_messages(dovecot: DovecotServer) -> None:
    result = seed_dovecot(dovecot, "bob", folders=50, messages_per_folder=3, seed=5)
    assert result.messages == 50 * 3  # every folder, group chats with sub-conversations included
    status = _status(dovecot, "bob")
    assert set(result.folders) <= set(status)
    assert all(status[name] == 3 for name in result.folders)


def test_seed_imap_works_over_the_wire_alone(dovecot: DovecotServer) -> None:
    result = seed_imap(dovecot.host, dovecot.port, "carol", dovecot.password("carol"), 20, 2, connections=3)
    status = _status(dovecot, "carol")
    assert all(status[name] == 2 for name in result.folders)
    assert result.messages == 40


def test_seeding_is_deterministic_across_servers(dovecot_factory: Callable[..., DovecotServer]) -> None:
    a, b = dovecot_factory(), dovecot_factory()
    ra = seed_dovecot(a, "alice", folders=10, messages_per_folder=2, seed=3)
    rb = seed_dovecot(b, "alice", folders=10, messages_per_folder=2, seed=3)
    assert ra.folders == rb.folders
    fetched = []
    for dv in (a, b):
        m = imaplib.IMAP4(dv.host, dv.port)
        m.login("alice", dv.password("alice"))
        m.select(f'"{ra.folders[3]}"', readonly=True)
        _, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        fetched.append(data)
        m.logout()
    assert fetched[0] == fetched[1]


@pytest.mark.slow
def test_ten_thousand_folders_seed_and_list(dovecot: DovecotServer) -> None:
    result = seed_dovecot(dovecot, "alice", folders=10_000)
    status = _status(dovecot, "alice")
    assert len(result.folders) == 10_000
    assert set(result.folders) <= set(status)


def test_folders_seeded_after_a_session_are_all_listed(dovecot_account: DovecotAccount) -> None:
    # The account already has a mailbox list index when the seeding (which bypasses it) starts.
    m = imaplib.IMAP4(dovecot_account.host, dovecot_account.port)
    m.login(dovecot_account.user, dovecot_account.password)
    m.create("before")
    m.list()
    m.logout()
    result = seed_dovecot(dovecot_account.server, dovecot_account.user, folders=40, messages_per_folder=1)
    status = _status(dovecot_account.server, dovecot_account.user)
    assert set(result.folders) | {"before", "INBOX"} == set(status)
    assert all(status[name] == 1 for name in result.folders)
