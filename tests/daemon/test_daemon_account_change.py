"""P1-8: changing [imap] username (or host) on an existing cache must not keep showing the old
account: the cache records which server account it mirrors and is emptied (one log line, with
folder_removed events for the apps) when the configuration names another."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from daemon_offline_helpers import offline_settings, outbox_events, sync_once, sync_until_equal
from daemon_sync_helpers import replay_events
from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.settings import DaemonSettings
from tests.msgstore.server_testlib import ThreadServer, make_settings, message

USERS = {"alice": "alice-pw", "carol": "carol-pw"}


def _seed(port: int, user: str, folders: list[str]) -> None:
    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login(user, USERS[user])
    try:
        for i, name in enumerate(folders):
            c.create_folder(name)
            c.append(name, message(i, subject=f"{user} {name}"))
    finally:
        c.logout()


def _as_device(s: DaemonSettings) -> DaemonSettings:
    """Same device (account id, cache file) whatever IMAP user it is configured for."""
    return s.model_copy(update={"account": s.account.model_copy(update={"id": "phone"})})


async def test_changed_username_empties_the_old_accounts_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ThreadServer(make_settings(), users=USERS) as srv:
        await asyncio.to_thread(_seed, srv.port, "alice", ["alice-1", "alice-2"])
        await asyncio.to_thread(_seed, srv.port, "carol", ["carol-1"])
        alice = _as_device(offline_settings(srv.port, "alice", USERS["alice"], tmp_path))
        first = await sync_once(alice)
        assert {"alice-1", "alice-2"} <= set(first)
        carol = _as_device(offline_settings(srv.port, "carol", USERS["carol"], tmp_path))
        carol = carol.model_copy(update={"cache": alice.cache})
        caplog.clear()
        caplog.set_level(logging.INFO, logger="cpmsync")
        final = await sync_until_equal(carol, srv.port, "carol", USERS["carol"])
        assert "alice-1" not in final and "carol-1" in final
        assert replay_events(outbox_events(carol)) == final  # apps saw alice's folders go
        lines = [r for r in caplog.records if "another IMAP account" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.WARNING
        cache = Cache.open(carol.cache.path, "phone", upgrade=False)
        try:
            assert cache.account().server == f"imap://carol@127.0.0.1:{srv.port}"
        finally:
            cache.close()
        # Same account again: nothing is dropped.
        caplog.clear()
        await sync_once(carol)
        assert not [r for r in caplog.records if "another IMAP account" in r.getMessage()]
