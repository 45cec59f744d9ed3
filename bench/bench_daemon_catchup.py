"""UNI bytes of ONE catch-up sync per discovery strategy, msgstore seeded to 10,000 folders of
which 3 changed (an APPEND each) while the device was offline.

The daemon's own sync engine runs against our msgstore three times on the same data, the server's
extensions switched per strategy: LIST-CHANGEDSINCE (CR Appendix I), LIST-STATUS (RFC 5819), LIST
then STATUS per folder (RFC 3501 + CONDSTORE). Bytes are measured on the wire by a TCP proxy in
front of the server (what the radio carries, TLS aside), with and without COMPRESS=DEFLATE.

    python bench/bench_daemon_catchup.py [--folders 10000] [--changed 3] [--initial-only]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import psutil
from _daemon_bench import daemon_settings, msgstore_thread, seed_msgstore

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.imap_client import ImapClient
from cpmsync.daemon.service import setup
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync_engine import SyncEngine
from tests.support import FaultProxy
from tests.support.msgstore_cluster import MsgstoreInstance

USER, PASSWORD = "bench", "bench-pw"

EXTENSIONS = {
    DiscoveryStrategy.LIST_CHANGEDSINCE: {},
    DiscoveryStrategy.LIST_STATUS: {"list_changedsince": False},
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER: {"list_changedsince": False, "list_status": False},
}


def _settings(port: int, cache: Path, compress: bool) -> DaemonSettings:
    return daemon_settings(port, USER, PASSWORD, cache, imap={"compress": compress})


async def sync_once(
    port: int, cache_path: Path, compress: bool, strategy: DiscoveryStrategy | None
) -> tuple[int, int, float, int]:
    """One catch-up through a proxy: (wire bytes down, wire bytes up, seconds, folders synced)."""
    settings = _settings(port, cache_path, compress)
    cache = Cache.open(cache_path, USER)
    try:
        async with FaultProxy("127.0.0.1", port) as px:
            async with ImapClient("127.0.0.1", px.port, tls="none", command_timeout_s=600) as imap:
                await setup(imap, settings)
                px.reset_counters()
                t0 = time.perf_counter()
                engine = SyncEngine(imap, cache, settings, forced_strategy=strategy)
                result = await engine.catch_up()
                secs = time.perf_counter() - t0
                down, up = px.bytes_down, px.bytes_up
                await imap.logout()
        return down, up, secs, result.folders
    finally:
        cache.close()


def _copy_db(src: Path, dst: Path) -> None:
    """The SQLite cache with its WAL: each strategy starts from the same synced state."""
    shutil.copy(src, dst)
    for suffix in ("-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copy(Path(str(src) + suffix), Path(str(dst) + suffix))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folders", type=int, default=10_000)
    ap.add_argument("--changed", type=int, default=3)
    ap.add_argument("--initial-only", action="store_true", help="only the first sync (no catch-ups)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t0 = time.perf_counter()
        store, names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, args.folders, 1)
        print(f"seeded msgstore: {args.folders} folders x 1 message in {time.perf_counter() - t0:.1f} s")
        base = tmp / "cache-base.sqlite"
        # The first sync against `cpmsync msgstore serve` in its own process, as deployed: a server
        # thread in this process would share the daemon's GIL, and its CPU could not be told apart.
        with MsgstoreInstance(f"sqlite:///{tmp / 'store.sqlite'}") as ms:
            server = psutil.Process(ms.pid)
            cpu0, srv0 = time.process_time(), sum(server.cpu_times()[:2])
            down, up, secs, n = await sync_once(ms.port, base, True, None)
            cpu, srv = time.process_time() - cpu0, sum(server.cpu_times()[:2]) - srv0
            print(
                f"initial sync (list-status, COMPRESS): {n} folders in {secs:.1f} s, {down} B down, "
                f"{up} B up; CPU: daemon {cpu:.1f} s, msgstore {srv:.1f} s"
            )
        if args.initial_only:
            store.close()
            return
        # Offline changes: one APPEND in each of `changed` folders.
        for name in names[1 : 1 + args.changed]:
            store.append(USER, name, b"From: a@example.org\r\nSubject: new\r\n\r\nhello\r\n")
        rows = []
        for compress in (True, False):
            for strategy, ext in EXTENSIONS.items():
                cache_path = tmp / f"cache-{strategy}-{compress}.sqlite"
                _copy_db(base, cache_path)
                with msgstore_thread(store, ext) as port:
                    down, up, secs, n = await sync_once(port, cache_path, compress, strategy)
                rows.append((strategy, compress, down, up, secs, n))
        store.close()
    print()
    print(f"one catch-up sync, {args.folders} folders, {args.changed} changed (bytes on the wire, TLS aside)")
    print(f"{'strategy':<24}{'COMPRESS':>9}{'down B':>12}{'up B':>10}{'total B':>12}{'s':>8}{'folders':>9}")
    for strategy, compress, down, up, secs, n in rows:
        print(
            f"{strategy:<24}{'yes' if compress else 'no':>9}{down:>12}{up:>10}{down + up:>12}"
            f"{secs:>8.2f}{n:>9}"
        )
    for compress in (True, False):
        tot = {s: d + u for s, c, d, u, _x, _n in rows if c == compress}
        print(
            f"ratio LIST-STATUS / LIST-CHANGEDSINCE ({'with' if compress else 'without'} COMPRESS): "
            f"{tot['list-status'] / tot['list-changedsince']:.0f}x; "
            "LIST+STATUS / LIST-CHANGEDSINCE: "
            f"{tot['list-status-per-folder'] / tot['list-changedsince']:.0f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
