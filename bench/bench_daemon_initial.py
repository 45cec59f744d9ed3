"""Initial sync throughput: an empty cache, msgstore seeded to 1,000 folders x 20 messages; the
daemon's engine lists, selects and fetches everything (envelope, flags, size, date, preview) and
commits one transaction per folder. Prints messages/s and bytes.

    python bench/bench_daemon_initial.py [--folders 1000] [--messages 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_bench import daemon_settings, msgstore_thread, seed_msgstore

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.imap_client import ImapClient
from cpmsync.daemon.service import setup
from cpmsync.daemon.sync_engine import SyncEngine

USER, PASSWORD = "bench", "bench-pw"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folders", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        store, _names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, args.folders, args.messages)
        total = args.folders * args.messages
        with msgstore_thread(store, {}) as port:
            for compress in (True, False):
                path = tmp / f"cache-{compress}.sqlite"
                settings = daemon_settings(port, USER, PASSWORD, path, imap={"compress": compress})
                cache = Cache.open(path, USER)
                async with ImapClient("127.0.0.1", port, tls="none", command_timeout_s=600) as imap:
                    await setup(imap, settings)
                    t0 = time.perf_counter()
                    result = await SyncEngine(imap, cache, settings).catch_up()
                    secs = time.perf_counter() - t0
                    await imap.logout()
                got = sum(f.messages for f in cache.folders().values())
                cache.close()
                b = result.bytes
                print(
                    f"initial sync {args.folders} folders x {args.messages} messages "
                    f"({'with' if compress else 'without'} COMPRESS): {got}/{total} messages "
                    f"in {secs:.1f} s = "
                    f"{got / secs:.0f} messages/s, {result.folders / secs:.0f} folders/s; "
                    f"IMAP {b.imap_in} B in / {b.imap_out} B out, wire {b.wire_in} B in / {b.wire_out} B out"
                )
        store.close()


if __name__ == "__main__":
    asyncio.run(main())
