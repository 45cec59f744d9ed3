"""Change-to-event latency with NOTIFY: another client APPENDs, the daemon (IMAP session + MQTT
publisher, the same pieces `cpmsync daemon run` runs) syncs the folder and publishes; a subscriber
on the local Mosquitto receives the message_added event. Median and p99 over N changes.

    python bench/bench_daemon_latency.py [--changes 200] [--debounce-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import aiomqtt
from _daemon_bench import daemon_settings, msgstore_thread, seed_msgstore
from imapclient import IMAPClient

from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import ImapSession
from tests.support import MosquittoBroker

USER, PASSWORD = "bench", "bench-pw"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run(changes: int, debounce_ms: int, folders: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as td, MosquittoBroker() as mq:
        tmp = Path(td)
        store, names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, folders, 2)
        with msgstore_thread(store, {}) as port:
            settings = daemon_settings(
                port,
                USER,
                PASSWORD,
                tmp / "cache.sqlite",
                imap={"debounce_ms": debounce_ms, "command_timeout_s": 60},
                mqtt={"host": mq.host, "port": mq.port},
            )
            cache = open_cache(settings)
            publisher = Publisher(settings.mqtt, USER, cache)
            session = ImapSession(settings, cache, publisher)
            seen: dict[str, float] = {}
            got = asyncio.Event()
            latencies: list[float] = []
            after_ok: list[float] = []  # from the APPEND's tagged OK (the server committed)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(publisher.run())
                sess = tg.create_task(session.run())
                await session.ready.wait()
                async with aiomqtt.Client(mq.host, mq.port, identifier="bench-sub") as sub:
                    await sub.subscribe(f"cpm/{USER}/folders/+/events", qos=1)

                    async def listen() -> None:
                        async for m in sub.messages:
                            ev = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                            if ev["kind"] == "message_added" and ev["subject"]:
                                seen[ev["subject"]] = time.perf_counter()
                                got.set()

                    lt = tg.create_task(listen())
                    c = IMAPClient("127.0.0.1", port, ssl=False)
                    c.login(USER, PASSWORD)
                    for i in range(changes):
                        subject = f"latency-{i}"
                        folder = names[i % len(names)]
                        got.clear()
                        t0 = time.perf_counter()
                        await asyncio.to_thread(
                            c.append,
                            folder,
                            f"From: x@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n".encode(),
                        )
                        t_ok = time.perf_counter()
                        async with asyncio.timeout(30):
                            while subject not in seen:
                                await got.wait()
                                got.clear()
                        latencies.append(seen[subject] - t0)
                        after_ok.append(seen[subject] - t_ok)
                    c.logout()
                    lt.cancel()
                session.stop.set()
                await sess
                await publisher.close()
            cache.close()
        store.close()
    return latencies, after_ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--debounce-ms", type=int, nargs="*", default=[0, 250])
    ap.add_argument("--folders", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"change-to-event latency, msgstore with NOTIFY, {args.folders} folders, {args.changes} APPENDs")
    for d in args.debounce_ms:
        lat, after_ok = asyncio.run(run(args.changes, d, args.folders))
        ms = [x * 1000 for x in lat]
        ok = [x * 1000 for x in after_ok]
        print(
            f"debounce_ms={d:>4}: APPEND sent -> event: median {statistics.median(ms):.1f} ms, "
            f"p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms (n={len(ms)}); "
            f"APPEND OK -> event: median {statistics.median(ok):.1f} ms, p99 {pct(ok, 99):.1f} ms"
        )


if __name__ == "__main__":
    main()
