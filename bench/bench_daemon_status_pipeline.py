"""LIST + STATUS per folder (servers without LIST-STATUS): STATUS one at a time vs pipelined.

The daemon's own discovery (`discover(..., status_window=N)`) against our msgstore with
LIST-CHANGEDSINCE and LIST-STATUS switched off, COMPRESS on, through a proxy that adds a one-way
delay to every chunk (a radio link's round trip). Window 1 is the daemon before pipelining: one
round trip and one deflate flush per folder.

    python bench/bench_daemon_status_pipeline.py [--folders 1000] [--one-way-ms 10] [--windows 1,128]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from _daemon_bench import msgstore_thread, seed_msgstore

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.discovery import DiscoveryStrategy, discover
from cpmsync.daemon.imap_client import ImapClient
from tests.support import FaultProxy

USER, PASSWORD = "bench", "bench-pw"
NO_LIST_STATUS = {"list_changedsince": False, "list_status": False}


async def one(port: int, cache_path: Path, window: int, one_way_ms: float) -> tuple[int, int, float, int]:
    """One discovery: (wire bytes up, wire bytes down, seconds, folders listed)."""
    cache = Cache.open(cache_path, USER)
    try:
        async with FaultProxy("127.0.0.1", port) as px:
            px.delay_ms = one_way_ms
            async with ImapClient("127.0.0.1", px.port, tls="none", command_timeout_s=600) as imap:
                await imap.login(USER, PASSWORD)
                await imap.compress()
                await imap.enable("QRESYNC")
                before = imap.counters.snapshot()
                t0 = time.perf_counter()
                d = await discover(
                    imap, cache, DiscoveryStrategy.LIST_STATUS_PER_FOLDER, status_window=window
                )
                secs = time.perf_counter() - t0
                used = imap.counters.since(before)
                await imap.logout()
        return used.wire_out, used.wire_in, secs, d.listed
    finally:
        cache.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folders", type=int, default=1000)
    ap.add_argument("--one-way-ms", type=float, default=10.0)
    ap.add_argument("--windows", default="1,128")
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        store, _names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, args.folders, 1)
        rows = []
        with msgstore_thread(store, NO_LIST_STATUS) as port:
            for w in windows:
                rows.append((w, *await one(port, tmp / f"cache-{w}.sqlite", w, args.one_way_ms)))
        store.close()
    print(
        f"LIST + STATUS per folder, {args.folders} folders, COMPRESS, "
        f"{args.one_way_ms:g} ms one way ({2 * args.one_way_ms:g} ms round trip)"
    )
    print(f"{'window':>6} {'up B':>9} {'down B':>9} {'s':>8} {'listed':>7}")
    for w, up, down, secs, listed in rows:
        print(f"{w:>6} {up:>9} {down:>9} {secs:>8.2f} {listed:>7}")
    base = rows[0]
    for w, up, down, secs, _ in rows[1:]:
        print(
            f"window {w} vs {base[0]}: {base[3] / secs:.1f}x faster, "
            f"{(base[1] + base[2]) / (up + down):.2f}x fewer bytes"
        )


if __name__ == "__main__":
    asyncio.run(main())
