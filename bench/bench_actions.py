"""Apps' actions over MQTT (issue 16): an app publishes mark_read / mark_unread on
`cpm/{account}/actions`; a subscriber on the local Mosquitto times

  * accept -> retained summary updated: publish -> the folder's retained summary with the new
    unseen count arrives (the optimistic change, before any IMAP traffic);
  * accept -> applied, server reachable: publish -> the `applied` result (STORE done on msgstore);
  * wakes on 10 actions: how many times the daemon left IDLE to apply them (one apply pass = one
    radio wake), for a burst and for 10 actions spread evenly over 2 s, per [actions] window_ms.

The daemon is the real one (IMAP session + MQTT publisher, as `cpmsync daemon run`), against
msgstore with NOTIFY (the link idles between actions).

    python bench/bench_actions.py [--rounds 200] [--folders 50]
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
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import aiomqtt
from _daemon_bench import msgstore_thread, seed_msgstore

from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import ImapSession
from cpmsync.daemon.settings import DaemonSettings
from tests.support import MosquittoBroker

USER, PASSWORD = "bench", "bench-pw"
MESSAGES = 3


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


class Watch:
    """What the app sees: summaries by folder and results by id, with arrival times."""

    def __init__(self) -> None:
        self.summary: dict[str, tuple[int, float]] = {}  # folder -> (unseen, t)
        self.results: dict[tuple[str, str], float] = {}  # (id, state) -> t
        self.changed = asyncio.Event()

    def feed(self, topic: str, payload: bytes) -> None:
        now = time.perf_counter()
        data = json.loads(payload) if payload else None
        if topic.endswith("/actions/results") and data:
            self.results.setdefault((data["id"], data["state"]), now)
        elif data and "unseen" in data:
            self.summary[data["name"]] = (data["unseen"], now)
        self.changed.set()

    async def until(self, pred: Any) -> None:
        async with asyncio.timeout(60):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


async def run(rounds: int, folders: int, window_ms: int, *, latency: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as td, MosquittoBroker(extra_conf="set_tcp_nodelay true") as mq:
        tmp = Path(td)
        store, names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, folders, MESSAGES)
        with msgstore_thread(store, {}) as port:
            settings = DaemonSettings.model_validate(
                {
                    "account": {"id": USER},
                    "imap": {"host": "127.0.0.1", "port": port, "tls": "none", "username": USER,
                             "password": PASSWORD},
                    "mqtt": {"host": mq.host, "port": mq.port},
                    "cache": {"path": str(tmp / "cache.sqlite")},
                    "actions": {"window_ms": window_ms},
                }
            )  # fmt: skip
            cache = open_cache(settings)
            publisher = Publisher(settings.mqtt, USER, cache)
            session = ImapSession(settings, cache, publisher)
            queue = session.actions
            assert queue is not None and publisher.inbox is not None
            watch = Watch()
            out: dict[str, Any] = {}
            async with asyncio.TaskGroup() as tg:
                tg.create_task(publisher.run())
                sess = tg.create_task(session.run())
                await session.ready.wait()
                await publisher.inbox.ready.wait()  # type: ignore[attr-defined]
                async with aiomqtt.Client(
                    mq.host, mq.port, identifier="bench-app", protocol=aiomqtt.ProtocolVersion.V5
                ) as app:
                    await app.subscribe(f"cpm/{USER}/folders/+", qos=1)
                    await app.subscribe(f"cpm/{USER}/actions/results", qos=1)

                    async def listen() -> None:
                        async for m in app.messages:
                            watch.feed(str(m.topic), bytes(m.payload))  # type: ignore[arg-type]

                    lt = tg.create_task(listen())
                    await watch.until(lambda: all(n in watch.summary for n in names))

                    async def act(kind: str, folder: str) -> tuple[str, float]:
                        aid = uuid.uuid4().hex
                        body = json.dumps({"id": aid, "action": kind, "folder": folder}).encode()
                        t0 = time.perf_counter()
                        await app.publish(f"cpm/{USER}/actions", body, qos=1)
                        return aid, t0

                    if latency:
                        to_summary: list[float] = []
                        to_applied: list[float] = []
                        for i in range(rounds):
                            folder = names[i % len(names)]
                            read = watch.summary[folder][0] > 0
                            want = 0 if read else MESSAGES
                            aid, t0 = await act("mark_read" if read else "mark_unread", folder)
                            await watch.until(lambda f=folder, w=want: watch.summary[f][0] == w)
                            to_summary.append(watch.summary[folder][1] - t0)
                            await watch.until(lambda a=aid: (a, "applied") in watch.results)
                            to_applied.append(watch.results[(aid, "applied")] - t0)
                        out["summary_ms"] = [x * 1000 for x in to_summary]
                        out["applied_ms"] = [x * 1000 for x in to_applied]

                    async def wakes_for(spread_s: float) -> int:
                        await watch.until(lambda: not queue.pending())
                        await asyncio.sleep(0.5)  # back in IDLE
                        before = queue.wakes
                        ids = []
                        for i in range(10):
                            folder = names[(i * 7) % len(names)]
                            kind = "mark_read" if watch.summary[folder][0] > 0 else "mark_unread"
                            ids.append((await act(kind, folder))[0])
                            if spread_s:
                                await asyncio.sleep(spread_s / 9)
                        await watch.until(lambda: all((a, "applied") in watch.results for a in ids))
                        return queue.wakes - before

                    out["wakes_burst"] = await wakes_for(0.0)
                    out["wakes_spread_2s"] = await wakes_for(2.0)
                    lt.cancel()
                session.stop.set()
                await sess
                await publisher.close()
            cache.close()
            return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--folders", type=int, default=50)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    r = asyncio.run(run(args.rounds, args.folders, 300, latency=True))
    s, a = r["summary_ms"], r["applied_ms"]
    print(
        f"actions over MQTT, msgstore with NOTIFY, {args.rounds} sequential actions, {args.folders} folders"
    )
    print(
        f"accept -> retained summary updated: median {statistics.median(s):.1f} ms, p99 {pct(s, 99):.1f} ms"
    )
    print(f"accept -> applied (server reachable, window_ms 300): median {statistics.median(a):.1f} ms, "
          f"p99 {pct(a, 99):.1f} ms")  # fmt: skip
    print("wakes spent on 10 actions (goal: 1):")
    print(f"  window_ms 300:  burst {r['wakes_burst']}, spread over 2 s {r['wakes_spread_2s']}")
    for window in (2000, 2500):
        w = asyncio.run(run(0, args.folders, window, latency=False))
        print(f"  window_ms {window}: burst {w['wakes_burst']}, spread over 2 s {w['wakes_spread_2s']}")


if __name__ == "__main__":
    main()
