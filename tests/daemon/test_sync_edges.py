"""Edge cases of the sync against our msgstore: a folder deleted and re-created under the same name
while the daemon was away (new UIDVALIDITY), the wire trace, stats per run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)

from tests.msgstore.server_testlib import ThreadServer
from tests.support import MosquittoBroker, run_cli


async def test_recreated_folder_new_uidvalidity_drops_and_resyncs(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    with ThreadServer() as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(3, 4, 1)
        settings = acct.settings(broker.port, tmp_path)
        async with running_daemon(settings) as (_s, cache):
            await wait_equal(cache, acct.state)
            old = cache.folder("Default")
            assert old is not None and old.messages == 4
        c = acct.client()  # while the daemon is away
        c.delete_folder("Default")
        c.create_folder("Default")
        c.append("Default", b"From: z@example.org\r\nSubject: after\r\n\r\nnew life\r\n")
        c.logout()
        async with running_daemon(settings) as (_s, cache):
            await wait_equal(cache, acct.state)
            new = cache.folder("Default")
            assert new is not None and new.uidvalidity != old.uidvalidity
            assert [m.subject for m in cache.messages("Default")] == ["after"]


async def test_trace_and_stats_are_recorded(broker: MosquittoBroker, tmp_path: Path) -> None:
    with ThreadServer() as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(2, 2, 2)
        settings = acct.settings(broker.port, tmp_path)
        settings.trace.enabled = True
        async with running_daemon(settings) as (_s, cache):
            runs = cache.runs()
            trace = cache.trace()
        assert runs and runs[-1].strategy == "list-status" and runs[-1].folders_touched == 3
        assert runs[-1].wire_bytes_in > 0 and runs[-1].bytes_in >= runs[-1].wire_bytes_in  # COMPRESS
        assert {d for _c, _t, d, _n in trace} == {"in", "out"}
        assert sum(n for _c, _t, d, n in trace if d == "in") >= runs[-1].wire_bytes_in
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[account]\nid = "{settings.account.id}"\n[cache]\npath = "{settings.cache.path}"\n')
    out = run_cli(["daemon", "stats", "--config", str(cfg)])
    assert out.returncode == 0 and "list-status" in out.stdout


async def test_burst_of_notifications_is_one_sync(broker: MosquittoBroker, tmp_path: Path) -> None:
    """Each radio wake costs energy: changes within debounce_ms are synced together."""
    with ThreadServer() as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(2, 1, 3)
        settings = acct.settings(broker.port, tmp_path, debounce_ms=3000)
        async with running_daemon(settings) as (_s, cache):
            before = len(cache.runs())
            c = acct.client()
            for i in range(5):
                c.append("Default", f"Subject: burst {i}\r\n\r\nx\r\n".encode())
            c.logout()
            await wait_equal(cache, acct.state)
            # The folder commit makes the cache equal; the run's record is finished just after it.
            await wait_until(lambda: all(r.ended for r in cache.runs()[: len(cache.runs()) - before]))
            push_runs = [r for r in cache.runs()[: len(cache.runs()) - before] if r.strategy == "notify"]
        assert len(push_runs) == 1 and push_runs[0].folders_touched == 1


async def test_changedsince_reports_deletions_and_renames_made_offline(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """msgstore's CHANGEDSINCE extension: \\NonExistent and OLDNAME entries, no names-only LIST needed."""
    with ThreadServer() as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(4, 2, 9)
        settings = acct.settings(broker.port, tmp_path)
        async with running_daemon(settings) as (_s, cache):
            await wait_equal(cache, acct.state)
            names = sorted(n for n in cache.folders() if n.startswith("tel:"))
            uids = [m.uid for m in cache.messages(names[1])]
        c = acct.client()
        c.delete_folder(names[0])
        c.rename_folder(names[1], "renamed")
        c.logout()
        async with running_daemon(settings) as (_s, cache):
            await wait_equal(cache, acct.state)
            assert cache.runs()[0].strategy == "list-changedsince"
            assert names[0] not in cache.folders() and names[1] not in cache.folders()
            assert [m.uid for m in cache.messages("renamed")] == uids  # moved, not refetched


async def test_expunging_the_newest_message_does_not_start_a_sync_storm(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """UIDNEXT stays above the newest known UID after that message is expunged: no endless refetch."""
    with ThreadServer() as srv:
        acct = LocalAccount(srv.port)
        await acct.seed(2, 3, 4)
        settings = acct.settings(broker.port, tmp_path)
        async with running_daemon(settings) as (_s, cache):
            c = acct.client()
            c.select_folder("Default")
            newest = max(c.search("ALL"))
            c.add_flags([newest], [b"\\Deleted"])
            c.uid_expunge([newest])
            c.unselect_folder()
            await wait_equal(cache, acct.state)
            runs_after_expunge = len(cache.runs(limit=10_000))
            c.select_folder("Default")
            for flag in (b"\\Flagged", b"$Later", b"\\Answered"):  # later changes in that folder
                c.add_flags([min(c.search("ALL"))], [flag])
                await wait_equal(cache, acct.state)
            c.unselect_folder()
            await asyncio.sleep(1)  # a storm, if any, would add runs here
            c.logout()
            assert len(cache.runs(limit=10_000)) - runs_after_expunge <= 6


async def test_run_daemon_embedded_ready_and_stop(broker: MosquittoBroker, tmp_path: Path) -> None:
    """run_daemon for an embedding program: on_ready after the first sync, stop without a signal."""
    from cpmsync.daemon.service import run_daemon

    with ThreadServer() as srv:
        settings = LocalAccount(srv.port).settings(broker.port, tmp_path)
        stop = asyncio.Event()
        ready: list[bool] = []

        def on_ready() -> None:
            ready.append(True)
            stop.set()

        async with asyncio.timeout(60):
            await run_daemon(settings, install_signals=False, stop=stop, on_ready=on_ready)
        assert ready == [True]
