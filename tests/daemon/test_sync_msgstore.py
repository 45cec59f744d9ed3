"""The sync engine against our msgstore in all three discovery modes (its extensions switched off
through its settings): LIST-CHANGEDSINCE + NOTIFY, LIST-STATUS + IDLE, and legacy LIST + STATUS
per folder (no CONDSTORE/QRESYNC/NOTIFY). After random changes by another client the cache
equals the server and the MQTT events alone rebuild the same state."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)

from cpmsync.daemon.push import push_mode
from cpmsync.msgstore import MsgstoreSettings
from tests.msgstore.server_testlib import ThreadServer, make_settings
from tests.support import MosquittoBroker

_LEGACY = {"server": {"listen": ["127.0.0.1:0"]}, "limits": {"auth_failure_delay_ms": 0}}

# mode -> (server settings, the discovery strategy the daemon must pick)
MODES: dict[str, tuple[Any, str]] = {
    "changedsince+notify": (lambda: make_settings(), "list-changedsince"),
    "list-status+notify": (lambda: make_settings(extensions={"list_changedsince": False}), "list-status"),
    # CONDSTORE without QRESYNC: UID FETCH (CHANGEDSINCE) + UID SEARCH for expunges, IDLE on INBOX.
    "list-status+condstore+idle": (
        lambda: make_settings(extensions={"list_changedsince": False, "qresync": False, "notify": False}),
        "list-status",
    ),
    # Legacy: LIST + STATUS per folder, full UID/FLAGS comparison, IDLE on INBOX + polls.
    "legacy+idle": (lambda: MsgstoreSettings.legacy(**_LEGACY), "list-status-per-folder"),
    # Neither NOTIFY nor IDLE: polls only.
    "legacy+poll": (
        lambda: MsgstoreSettings.legacy(**_LEGACY, extensions={"idle": False}),
        "list-status-per-folder",
    ),
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_msgstore_random_changes_every_mode(broker: MosquittoBroker, tmp_path: Path, mode: str) -> None:
    make, expected = MODES[mode]
    with ThreadServer(make()) as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(4, 3, 5)
        # Without CONDSTORE polls compare STATUS only; a flag change that moves no count is found
        # by the full pass every names_list_interval_s.
        settings = acct.settings(broker.port, tmp_path, poll_interval_s=1, names_list_interval_s=2)
        col = Collector(broker.port, [f"cpm/{acct.user}/#"], client_id=f"col-{mode}")
        rng = random.Random(mode)
        async with col.running():
            async with running_daemon(settings) as (session, cache):
                assert session.engine is not None
                imap = session.engine.imap
                method = (
                    "qresync"
                    if "QRESYNC" in imap.enabled
                    else "condstore"
                    if imap.has("CONDSTORE")
                    else "full"
                )
                push = push_mode(imap)
                for _round in range(2):
                    c = acct.client()
                    await asyncio.to_thread(random_changes, c, rng, 12)
                    c.logout()
                    final = await wait_equal(cache, acct.state)
                discoveries = [
                    r.strategy for r in cache.runs(10_000) if r.strategy not in ("notify", "idle", "names")
                ]
                await wait_replay(col, final)
            if push == "notify":
                # NOTIFY named every change: no discovery poll ran after the start's catch-up.
                assert len(discoveries) == 1, discoveries
            # A restart catches up with the cheapest discovery the server offers.
            async with running_daemon(settings) as (_session, cache):
                strategies = {r.strategy for r in cache.runs()}
        assert expected in strategies
        assert (
            f"{method}/{push}"
            == {
                "changedsince+notify": "qresync/notify",
                "list-status+notify": "qresync/notify",
                "list-status+condstore+idle": "condstore/idle",
                "legacy+idle": "full/idle",
                "legacy+poll": "full/poll",
            }[mode]
        )
        if expected != "list-changedsince":
            assert "list-changedsince" not in strategies
