"""An `idle_folder` that does not exist on a server without NOTIFY: IDLE with nothing selected
would hear nothing, so the daemon says so once and polls; changes still reach the cache."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)
from imapclient import IMAPClient

from cpmsync.msgstore import MsgstoreSettings
from tests.msgstore.server_testlib import ThreadServer
from tests.support import MosquittoBroker

_LEGACY = {"server": {"listen": ["127.0.0.1:0"]}, "limits": {"auth_failure_delay_ms": 0}}


async def test_missing_idle_folder_warns_once_and_polls(
    broker: MosquittoBroker, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="cpmsync")
    with ThreadServer(MsgstoreSettings.legacy(**_LEGACY)) as srv:  # IDLE, no NOTIFY
        user, pw = "alice", "alice-pw"
        await asyncio.to_thread(seed_small, "127.0.0.1", srv.port, user, pw, 2, 1, 5)
        settings = daemon_settings(
            "127.0.0.1",
            srv.port,
            user,
            pw,
            broker.port,
            tmp_path,
            idle_folder="NoSuchFolder",
            poll_interval_s=1,
        )

        def warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

        async with running_daemon(settings) as (_session, cache):
            await wait_until(lambda: bool(warnings()))
            c = IMAPClient("127.0.0.1", srv.port, ssl=False, use_uid=True)
            c.login(user, pw)
            c.append("Default", b"From: x@example.org\r\nSubject: later\r\n\r\nhi\r\n")
            c.logout()
            await wait_equal(cache, lambda: server_state("127.0.0.1", srv.port, user, pw))  # by a poll
        assert warnings() == ["idle_folder 'NoSuchFolder' does not exist; polling every 1 s"]
