"""The daemon's CPU to hand a first sync's events to the broker, against MQTT clients that only publish.

A first sync writes one event per message (and a retained summary per folder) to the outbox; the
publisher then sends each row QoS 1 and deletes it once the broker's PUBACK came. On a device that
costs CPU on top of the sync itself, and an app sees the first sync end only when the last event
arrived. This bench syncs a seeded Dovecot account once (the child of bench_daemon_vs_mbsync.py)
and drains a copy of that cache's outbox, in `--rounds` fresh processes each, to a private
Mosquitto through:

- the daemon's Publisher (reads the outbox, publishes, deletes what was acknowledged);
- bare paho-mqtt, the library under it: the same rows (read before the clock starts) published
  QoS 1 with the same window, nothing stored, nothing deleted: the floor for Python;
- `mosquitto_pub -l -q 1` (C, Mosquitto's client): the same payloads, one per line, to one topic;
- with `--base REV`, the Publisher of another revision (checked out in a temporary worktree).

The Python children time themselves from just before the first publish to the last
acknowledgement (CPU of all their threads: imports and set-up are not counted);
mosquitto_pub's CPU is its whole process's (its start-up is ~2 ms).

    python bench/bench_daemon_publish.py [--shape 1000x20] [--rounds 3] [--base REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from _bytecode import compiled_bytecode
from _dovecot import seeded_dovecot

from tests.support import MosquittoBroker

ROOT = Path(__file__).resolve().parents[1]
USER = "alice"

_PUBLISHER = r"""
import asyncio, json, logging, resource, sys, time
from pathlib import Path
from cpmsync.daemon.cache import Cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.settings import MqttSettings

async def main(path, port, inflight):
    cache = Cache.open(Path(path), "alice")
    rows = cache.outbox_count()
    settings = MqttSettings(host="127.0.0.1", port=port, max_inflight=inflight)
    pub = Publisher(settings, "alice", cache, client_id=f"bench-publisher-{time.time_ns()}")
    c0, t0 = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        while pub.published < rows:
            await asyncio.sleep(0.002)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        await pub.close()
    left = cache.outbox_count()
    print(json.dumps({"rows": rows, "left": left, "wall": wall, "cpu": cpu}))

logging.basicConfig(level=logging.WARNING)
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

_PAHO = r"""
import json, sqlite3, sys, threading, time
import paho.mqtt.client as mqtt

path, port, inflight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
rows = [(t, p.encode(), q, bool(r)) for t, p, q, r in db.execute(
    "SELECT topic, payload, qos, retain FROM outbox ORDER BY id")]
db.close()
done = threading.Event()
acked = 0

def on_publish(client, userdata, mid, reason_code, properties):
    global acked
    acked += 1
    if acked == len(rows):
        done.set()

c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{time.time_ns()}",
                protocol=mqtt.MQTTv5)
c.max_inflight_messages_set(inflight)
c.max_queued_messages_set(0)
c.on_publish = on_publish
c.connect("127.0.0.1", port)
c.loop_start()
c0, t0 = time.process_time(), time.perf_counter()
for topic, payload, qos, retain in rows:
    c.publish(topic, payload, qos=qos, retain=retain)
done.wait(600)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
c.disconnect()
c.loop_stop()
print(json.dumps({"rows": len(rows), "left": len(rows) - acked, "wall": wall, "cpu": cpu}))
"""


@dataclass
class Drain:
    rows: int
    wall_s: float
    cpu_s: float

    @property
    def us_per_row(self) -> float:
        return self.cpu_s / self.rows * 1e6


def _python_child(code: str, cache: Path, port: int, inflight: int, env: dict[str, str]) -> Drain:
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache), str(port), str(inflight)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",  # `-c` puts the working directory before PYTHONPATH
    )
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["left"]:
        raise SystemExit(f"{got['left']} rows were not acknowledged")
    return Drain(got["rows"], got["wall"], got["cpu"])


def _mosquitto_pub(cache: Path, port: int, tmp: Path) -> Drain:
    import sqlite3

    db = sqlite3.connect(cache)
    payloads = [p for (p,) in db.execute("SELECT payload FROM outbox WHERE payload != '' ORDER BY id")]
    db.close()
    lines = tmp / "payloads.txt"
    lines.write_text("".join(p + "\n" for p in payloads))
    before = os.times()
    t0 = time.perf_counter()
    with lines.open("rb") as f:
        subprocess.run(
            ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", "cpm/alice/bench", "-l", "-V", "mqttv5"],
            stdin=f,
            check=True,
        )
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Drain(len(payloads), wall, cpu)


def _fresh_copy(template: Path, tmp: Path) -> Path:
    target = tmp / "drain.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, target)
    return target


def _median(runs: list[Drain]) -> Drain:
    return sorted(runs, key=lambda d: d.cpu_s)[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="1000x20", help="FOLDERSxMESSAGES of the first sync (1000x20)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=20, help="the window ([mqtt] max_inflight, 20)")
    ap.add_argument("--base", help="also drain with the Publisher of this git revision")
    args = ap.parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto not found: apt-get install mosquitto mosquitto-clients")
    folders, per = (int(x) for x in args.shape.lower().split("x"))
    git = ["git", "-C", str(ROOT)]
    with tempfile.TemporaryDirectory(prefix="cpmsync-publish-") as td:
        tmp = Path(td)
        template = tmp / "first-sync.sqlite"
        with seeded_dovecot(folders, per) as (dv, _seeded):
            spec = {"port": dv.port, "password": dv.password(USER), "cache": str(template), "gc": "service"}
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "bench_daemon_vs_mbsync.py"),
                    "--child-daemon",
                    json.dumps(spec),
                ],
                check=True,
                capture_output=True,
            )
        base: Path | None = None
        if args.base:
            rev = subprocess.run(
                [*git, "rev-parse", "--short", args.base], capture_output=True, text=True, check=True
            ).stdout.strip()
            base = tmp / "base"
            subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(base), rev], check=True)
        try:
            envs = {"daemon": dict(os.environ, PYTHONPATH=str(ROOT))}
            if base is not None:
                envs[f"daemon at {args.base}"] = dict(os.environ, PYTHONPATH=str(base))
            runs: dict[str, list[Drain]] = {name: [] for name in [*envs, "bare paho", "mosquitto_pub"]}
            with ExitStack() as stack:
                broker = stack.enter_context(MosquittoBroker(extra_conf="set_tcp_nodelay true"))
                for env in envs.values():  # each tree's modules compiled once, as installed
                    stack.enter_context(compiled_bytecode(env))
                for i in range(args.rounds):
                    for name, env in envs.items():
                        runs[name].append(
                            _python_child(
                                _PUBLISHER, _fresh_copy(template, tmp), broker.port, args.inflight, env
                            )
                        )
                    runs["bare paho"].append(
                        _python_child(
                            _PAHO, _fresh_copy(template, tmp), broker.port, args.inflight, envs["daemon"]
                        )
                    )
                    runs["mosquitto_pub"].append(_mosquitto_pub(template, broker.port, tmp))
                    print(
                        f"  round {i + 1}: "
                        + ", ".join(f"{n} {r[-1].cpu_s:.2f} s CPU" for n, r in runs.items()),
                        flush=True,
                    )
        finally:
            if base is not None:
                subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
    rows = runs["daemon"][0].rows
    print(
        f"\n== a first sync's outbox ({folders} folders x {per} messages: {rows} rows), "
        f"QoS 1, window {args.inflight}, private Mosquitto, median of {args.rounds}"
    )
    print("  (shared machine: compare the ratios of one run)")
    print(f"  {'publisher':<22} {'wall s':>7} {'CPU s':>7} {'CPU us/row':>11}  daemon / it")
    ours = _median(runs["daemon"])
    for name, rs in runs.items():
        m = _median(rs)
        ratio = "" if name == "daemon" else f"{ours.us_per_row / m.us_per_row:10.2f}x"
        print(f"  {name:<22} {m.wall_s:7.2f} {m.cpu_s:7.2f} {m.us_per_row:11.1f}  {ratio}")


if __name__ == "__main__":
    main()
