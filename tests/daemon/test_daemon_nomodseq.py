"""P0-8 (CR I.5): a NOMODSEQ folder is never listed by LIST-CHANGEDSINCE, yet changes made to it
while the daemon was down must reach the cache: the catch-up STATUSes the folders the cache
knows as NOMODSEQ and syncs those that moved."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_offline_helpers import offline_settings, outbox_events, sync_once, sync_until_equal
from daemon_sync_helpers import LocalAccount, replay_events

from tests.msgstore.server_testlib import ThreadServer, make_settings, message

USER, PW = LocalAccount.user, LocalAccount.password


def _seed(port: int) -> None:
    with LocalAccount(port).client() as c:
        for name in ("Default", "Other"):
            c.create_folder(name)
            for n in range(3):
                c.append(name, message(n))


def _offline_changes(port: int) -> None:
    with LocalAccount(port).client() as c:
        c.append("Default", message(7, subject="while you were away"))
        c.select_folder("Default")
        uids = c.search("ALL")
        c.add_flags([uids[0]], [b"\\Seen"])
        c.add_flags([uids[1]], [b"\\Deleted"])
        c.uid_expunge([uids[1]])
        c.unselect_folder()


def _status(port: int, folder: str) -> dict[bytes, int]:
    with LocalAccount(port).client() as c:
        return c.folder_status(folder, [b"MESSAGES", b"HIGHESTMODSEQ"])  # type: ignore[no-any-return]


async def test_nomodseq_folder_changed_while_daemon_down_is_synced_on_restart(tmp_path: Path) -> None:
    with ThreadServer(make_settings()) as srv:
        await asyncio.to_thread(_seed, srv.port)
        srv.store.set_nomodseq(USER, "Default")
        # msgstore reports gone folders itself: no names-only LIST at restart, so the STATUS of
        # the NOMODSEQ folders is what finds the change.
        settings = offline_settings(srv.port, USER, PW, tmp_path, changedsince_reports_gone=True)
        first = await sync_once(settings)
        assert len(first["Default"]) == 3
        # Another client changes the NOMODSEQ folder while the daemon is stopped.
        await asyncio.to_thread(_offline_changes, srv.port)
        st = await asyncio.to_thread(_status, srv.port, "Default")
        assert st[b"HIGHESTMODSEQ"] == 0 and st[b"MESSAGES"] == 3
        final = await sync_until_equal(settings, srv.port, USER, PW)
        assert len(final["Default"]) == 3
        assert replay_events(outbox_events(settings)) == final
