"""Without CONDSTORE (legacy msgstore, polls only): a poll compares STATUS with the cache and
re-syncs only folders whose counts moved; a flag change that moves no count is found by the full
pass every names_list_interval_s (documented in config/daemon.toml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)

from cpmsync.msgstore import MsgstoreSettings
from tests.msgstore.server_testlib import ThreadServer
from tests.support import MosquittoBroker

_LEGACY = {"server": {"listen": ["127.0.0.1:0"]}, "limits": {"auth_failure_delay_ms": 0}}


async def test_polls_without_condstore_sync_only_moved_folders(
    broker: MosquittoBroker, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="cpmsync")
    with ThreadServer(MsgstoreSettings.legacy(**_LEGACY, extensions={"idle": False})) as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(6, 2, 5)
        settings = acct.settings(broker.port, tmp_path, poll_interval_s=0.2, names_list_interval_s=2)

        def discoveries(full: bool) -> list[int]:
            return [
                r.changed
                for r in caplog.records
                if r.getMessage() == "discovery" and r.full is full and r.strategy == "list-status-per-folder"
            ]

        async with running_daemon(settings) as (_session, cache):
            assert discoveries(True)[0] == 7  # INBOX + 6 folders: the first pass compares them all
            await wait_until(lambda: len(discoveries(False)) >= 3)
            assert set(discoveries(False)) == {0}  # quiet polls: no folder SELECTed

            c = acct.client()
            c.append("Default", b"From: x@example.org\r\nSubject: later\r\n\r\nhi\r\n")
            await wait_equal(cache, acct.state)
            assert 1 in discoveries(False) and max(discoveries(False)) == 1

            full_passes = len(discoveries(True))
            c.select_folder("Default")
            c.add_flags([min(c.search("ALL"))], [b"\\Flagged"])  # moves no STATUS value
            c.logout()
            await wait_equal(cache, acct.state)  # by the full pass
            assert len(discoveries(True)) > full_passes
            assert max(discoveries(False)) == 1
