"""Stopping the daemon in the middle of its catch-up: the log and `daemon stats` must say the sync
was interrupted (and how far it got), and the daemon must not start waiting for changes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from daemon_sync_helpers import daemon_settings, seed_small

import cpmsync.daemon.sync_many as sync_many
from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.service import ImapSession
from tests.support import MosquittoBroker

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
    # Two commands in flight, a commit every two folders: the stop comes while the pipeline runs.
    settings = daemon_settings(
        acct.host, acct.port, acct.user, acct.password, broker.port, tmp_path, sync_window=2
    )
    cache = open_cache(settings)
    session = ImapSession(settings, cache, None)
    real_commit = sync_many.apply_changes_many
    committed: list[str] = []

    def commit_then_stop(cache: Any, changes: Any) -> None:
        # SIGTERM arriving while the first two folders are being committed (the engine keeps them).
        real_commit(cache, changes)
        committed.extend(ch.name for ch in changes)
        session.stop.set()

    monkeypatch.setattr(sync_many, "COMMIT_FOLDERS", 2)
    monkeypatch.setattr(sync_many, "apply_changes_many", commit_then_stop)
    caplog.set_level(logging.INFO, logger="cpmsync")
    try:
        await session.run()
        messages = [r.getMessage() for r in caplog.records]
        assert "catch-up sync done" not in messages
        assert "waiting for changes" not in messages
        (line,) = [r for r in caplog.records if r.getMessage() == "catch-up sync interrupted"]
        # What was in flight when the stop came is finished and kept; the rest is left pending.
        assert line.folders_done == len(committed) >= 2 and line.folders_pending >= 1
        assert line.folders_done + line.folders_pending == 6  # INBOX + 5 seeded folders
        assert sorted(cache.folders()) == sorted(committed)
        assert cache.runs(limit=1)[0].error == "interrupted"
        assert not session.ready.is_set() and cache.watermark == 0
    finally:
        cache.close()
