"""Stopping the daemon in the middle of its catch-up: the log and `daemon stats` must say the sync
was interrupted (and how far it got), and the daemon must not start waiting for changes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from daemon_sync_helpers import daemon_settings, seed_small

import cpmsync.daemon.sync_engine as sync_engine
from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.service import ImapSession
from cpmsync.testing import MosquittoBroker

pytestmark = pytest.mark.dovecot


async def test_stop_during_catch_up_is_logged_and_recorded_as_interrupted(
    dovecot_account: Any,
    broker: MosquittoBroker,
    tmp_path: Path,
    caplog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct = dovecot_account
    seed_small(acct.host, acct.port, acct.user, acct.password, folders=5, messages=1)
    settings = daemon_settings(acct.host, acct.port, acct.user, acct.password, broker.port, tmp_path)
    cache = open_cache(settings)
    session = ImapSession(settings, cache, None)
    real_sync_folder = sync_engine.sync_folder
    synced: list[str] = []

    async def sync_then_stop(*args: Any, **kw: Any) -> Any:
        # SIGTERM arriving while the second folder is being synced (the engine finishes that one).
        out = await real_sync_folder(*args, **kw)
        synced.append(args[2])
        if len(synced) == 2:
            session.stop.set()
        return out

    monkeypatch.setattr(sync_engine, "sync_folder", sync_then_stop)
    caplog.set_level(logging.INFO, logger="cpmsync")
    try:
        await session.run()
        messages = [r.getMessage() for r in caplog.records]
        assert "catch-up sync done" not in messages
        assert "waiting for changes" not in messages
        (line,) = [r for r in caplog.records if r.getMessage() == "catch-up sync interrupted"]
        assert line.folders_done == 2 and line.folders_pending == 4  # INBOX + 5 seeded folders
        assert cache.runs(limit=1)[0].error == "interrupted"
        assert not session.ready.is_set() and cache.watermark == 0
    finally:
        cache.close()
