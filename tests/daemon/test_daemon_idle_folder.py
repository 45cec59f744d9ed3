"""An `idle_folder` that does not exist on a server without NOTIFY: IDLE with nothing selected
would hear nothing, so the daemon says so once and polls; changes still reach the cache."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)

from cpmsync.msgstore import MsgstoreSettings
from tests.msgstore.server_testlib import ThreadServer
from tests.support import MosquittoBroker

_LEGACY = {"server": {"listen": ["127.0.0.1:0"]}, "limits": {"auth_failure_delay_ms": 0}}


async def test_missing_idle_folder_warns_once_and_polls(
    broker: MosquittoBroker, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="cpmsync")
    with ThreadServer(MsgstoreSettings.legacy(**_LEGACY)) as srv:  # IDLE, no NOTIFY
        acct = LocalAccount(srv.port)
        await acct.seed(2, 1, 5)
        settings = acct.settings(broker.port, tmp_path, idle_folder="NoSuchFolder", poll_interval_s=1)

        def warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

        async with running_daemon(settings) as (_session, cache):
            await wait_until(lambda: bool(warnings()))
            c = acct.client()
            c.append("Default", b"From: x@example.org\r\nSubject: later\r\n\r\nhi\r\n")
            c.logout()
            await wait_equal(cache, acct.state)  # by a poll
        assert warnings() == ["idle_folder 'NoSuchFolder' does not exist; polling every 1 s"]
