"""P1-9: a server that follows the CR strictly never reports deleted or renamed folders under
LIST-CHANGEDSINCE. A daemon restarted on an existing cache does one names-only LIST, so folders
deleted or renamed while it was down leave the cache (and the apps) at once, not after
names_list_interval_s."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_offline_helpers import offline_settings, outbox_events, sync_once, sync_until_equal
from daemon_sync_helpers import LocalAccount, replay_events

from tests.msgstore.server_testlib import ThreadServer, make_settings, message

USER, PW = LocalAccount.user, LocalAccount.password


def _seed(port: int) -> None:
    with LocalAccount(port).client() as c:
        for i, name in enumerate(["keep", "doomed", "old-name"]):
            c.create_folder(name)
            c.append(name, message(i))


def _offline(port: int) -> None:
    with LocalAccount(port).client() as c:
        c.delete_folder("doomed")
        c.rename_folder("old-name", "new-name")
        c.append("keep", message(9))


async def test_strict_cr_server_folders_gone_while_down_leave_cache_on_restart(tmp_path: Path) -> None:
    strict = make_settings(extensions={"changedsince_deletions_and_renames": False})
    with ThreadServer(strict) as srv:
        await asyncio.to_thread(_seed, srv.port)
        settings = offline_settings(srv.port, USER, PW, tmp_path, names_list_interval_s=3600)
        first = await sync_once(settings)
        assert {"doomed", "old-name"} <= set(first)
        await asyncio.to_thread(_offline, srv.port)
        final = await sync_until_equal(settings, srv.port, USER, PW)
        assert "doomed" not in final and "old-name" not in final and "new-name" in final
        events = outbox_events(settings)
        assert {"doomed", "old-name"} <= {e["folder"] for e in events if e["kind"] == "folder_removed"}
        assert replay_events(events) == final
