"""Daemon footprint at rest: `cpmsync daemon run` as its own process against msgstore (NOTIFY +
IDLE) and Mosquitto, after its first sync; RSS and CPU seconds over 60 s with no changes.

    python bench/bench_daemon_idle.py [--seconds 60] [--folders 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import psutil
from _daemon_bench import msgstore_thread, seed_msgstore

from cpmsync.daemon.cache import Cache
from tests.support import MosquittoBroker

USER, PASSWORD = "bench", "bench-pw"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--folders", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td, MosquittoBroker() as mq:
        tmp = Path(td)
        store, _ = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, args.folders, 2)
        with msgstore_thread(store, {}) as port:
            cache_path = tmp / "cache.sqlite"
            cfg = tmp / "daemon.toml"
            cfg.write_text(
                f'[account]\nid = "{USER}"\n[imap]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
                f'username = "{USER}"\n[mqtt]\nhost = "{mq.host}"\nport = {mq.port}\n'
                f'[cache]\npath = "{cache_path}"\n'
            )
            env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=PASSWORD)
            proc = subprocess.Popen(
                [sys.executable, "-m", "cpmsync.cli", "daemon", "run", "--config", str(cfg)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                t0 = time.monotonic()
                while True:  # first sync done = a finished run recorded in the cache
                    if cache_path.exists():
                        c = Cache.open(cache_path, USER)
                        runs = c.runs()
                        c.close()
                        if runs and runs[-1].ended is not None:
                            break
                    if time.monotonic() - t0 > 600 or proc.poll() is not None:
                        raise SystemExit("daemon did not finish its first sync")
                    time.sleep(0.5)
                sync_s = time.monotonic() - t0
                time.sleep(2)  # let the outbox drain
                p = psutil.Process(proc.pid)
                cpu0 = p.cpu_times()
                time.sleep(args.seconds)
                cpu1 = p.cpu_times()
                rss = p.memory_info().rss
                cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
                print(
                    f"daemon idle over {args.seconds:.0f} s after first sync of {args.folders} folders "
                    f"({sync_s:.1f} s): RSS {rss / 2**20:.1f} MiB, CPU {cpu:.3f} s "
                    f"({100 * cpu / args.seconds:.3f} % of one core)"
                )
            finally:
                proc.terminate()
                proc.wait(30)
        store.close()


if __name__ == "__main__":
    main()
