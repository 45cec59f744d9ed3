"""P1-5: the daemon's per-connection byte trace can be exported for the simulator:
`cpmsync daemon stats --trace-csv FILE [--conn ID]` writes the CSV `cpmsync simulate trace` reads."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from daemon_offline_helpers import offline_settings, sync_once

from cpmsync.daemon.cache import Cache
from tests.msgstore.server_testlib import ThreadServer, make_settings, message
from tests.support import run_cli


def _seed(port: int) -> None:
    from imapclient import IMAPClient

    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login("alice", "alice-pw")
    try:
        c.create_folder("Default")
        c.append("Default", message(1))
    finally:
        c.logout()


async def test_trace_csv_feeds_simulate_trace(tmp_path: Path) -> None:
    with ThreadServer(make_settings()) as srv:
        await asyncio.to_thread(_seed, srv.port)
        settings = offline_settings(srv.port, "alice", "alice-pw", tmp_path)
        settings = settings.model_copy(update={"trace": settings.trace.model_copy(update={"enabled": True})})
        await sync_once(settings)
        await sync_once(settings)  # a second connection
    cache = Cache.open(settings.cache.path, "alice", upgrade=False)
    rows = cache.trace()
    cache.close()
    conns = sorted({r[0] for r in rows})
    assert len(conns) == 2
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[account]\nid = "alice"\n[cache]\npath = "{settings.cache.path}"\n')

    out = tmp_path / "trace.csv"
    r = await asyncio.to_thread(run_cli, ["daemon", "stats", "--config", str(cfg), "--trace-csv", str(out)])
    assert r.returncode == 0, r.stderr
    table = list(csv.reader(out.read_text().splitlines()))
    assert table[0] == ["t_s", "direction", "bytes"]
    assert {d for _t, d, _b in table[1:]} == {"up", "down"}
    assert sum(int(b) for _t, _d, b in table[1:]) == sum(r[3] for r in rows)
    sim = await asyncio.to_thread(run_cli, ["simulate", "trace", str(out), "--radio", "lte", "--json"])
    assert sim.returncode == 0, sim.stderr
    assert json.loads(sim.stdout)

    # One connection, to stdout (a pipe into a file for `simulate trace`).
    r = await asyncio.to_thread(
        run_cli, ["daemon", "stats", "--config", str(cfg), "--trace-csv", "-", "--conn", conns[0]]
    )
    assert r.returncode == 0, r.stderr
    one = list(csv.reader(io.StringIO(r.stdout)))
    assert sum(int(b) for _t, _d, b in one[1:]) == sum(x[3] for x in rows if x[0] == conns[0])
    piped = tmp_path / "one.csv"
    piped.write_text(r.stdout)
    sim = await asyncio.to_thread(run_cli, ["simulate", "trace", str(piped), "--radio", "lte"])
    assert sim.returncode == 0, sim.stderr

    r = await asyncio.to_thread(
        run_cli, ["daemon", "stats", "--config", str(cfg), "--trace-csv", "-", "--conn", "nope"]
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "cpmsync daemon: no trace for connection nope in the cache (is [trace] enabled?)"
    ]
