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

`--end-to-end` also runs the real entry, `cpmsync daemon run`, against the same account and
broker, from exec until an app (`mosquitto_sub`, subscribed to the events topics before the
daemon starts) has received the last event: the first sync as an app sees it, with the
daemon's CPU at that moment (all its threads), beside mbsync's wall for the same account.

The Python children time themselves from just before the first publish to the last
acknowledgement (CPU of all their threads: imports and set-up are not counted);
mosquitto_pub's CPU is its whole process's (its start-up is ~2 ms).

    python bench/bench_daemon_publish.py [--shape 1000x20] [--rounds 3] [--base REV] [--end-to-end]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from _bytecode import compiled_bytecode
from _dovecot import seeded_dovecot
from bench_daemon_startup import threads_cpu_s
from bench_daemon_vs_mbsync import run_mbsync

from tests.support import MosquittoBroker

ROOT = Path(__file__).resolve().parents[1]
USER = "alice"
TOPIC = f"cpm/{USER}/folders/+/events"

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


def _app_subscriber(port: int, events: int) -> subprocess.Popen[bytes]:
    """`mosquitto_sub` on every folder's events, returned once the broker confirmed the
    subscription; it exits when it has received `events` messages."""
    sub = subprocess.Popen(
        # Line-buffered (stdbuf): its debug lines say when the subscription is in place.
        [
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-d",
            "-p",
            str(port),
            "-q",
            "1",
            "-V",
            "mqttv5",
            "-C",
            str(events),
            "-t",
            TOPIC,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert sub.stdout is not None
    for line in sub.stdout:
        if b"SUBACK" in line:
            break
    else:
        raise SystemExit("mosquitto_sub did not subscribe")
    out = sub.stdout
    threading.Thread(target=lambda: out.read(), daemon=True).start()  # the messages: not kept
    return sub


def _end_to_end(port: int, password: str, broker_port: int, events: int, tmp: Path) -> tuple[float, float]:
    """(wall s from exec until the app has the last event, the daemon's CPU s then)."""
    cache = tmp / "e2e.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cache}{suffix}").unlink(missing_ok=True)
    config = tmp / "daemon.toml"
    config.write_text(
        f'[account]\nid = "{USER}"\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\nusername = "{USER}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nclient_id = "bench-e2e-{time.time_ns()}"\n'
        f'[cache]\npath = "{cache}"\n'
    )
    sub = _app_subscriber(broker_port, events)
    script = Path(sys.executable).with_name("cpmsync")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "cpmsync.cli"]
    env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=password)
    t0 = time.perf_counter()
    daemon = subprocess.Popen(
        [*argv, "daemon", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while sub.poll() is None:
            if daemon.poll() is not None:
                err = daemon.stderr.read().decode(errors="replace") if daemon.stderr else ""
                raise SystemExit(f"the daemon exited:\n{err[-2000:]}")
            if time.perf_counter() - t0 > 600:
                raise SystemExit("the app did not receive every event in 600 s")
            time.sleep(0.005)
        return time.perf_counter() - t0, threads_cpu_s(daemon.pid)
    finally:
        sub.kill()
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


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
    ap.add_argument(
        "--end-to-end", action="store_true", help="also time `cpmsync daemon run` until an app has all"
    )
    args = ap.parse_args()
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub", *(["mbsync"] if args.end_to_end else [])):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install mosquitto mosquitto-clients isync")
    folders, per = (int(x) for x in args.shape.lower().split("x"))
    # In memory (/dev/shm), as bench_daemon_vs_mbsync: neither side waits for a disk.
    with tempfile.TemporaryDirectory(prefix="cpmsync-publish-", dir="/dev/shm") as td, ExitStack() as stack:
        tmp = Path(td)
        dv, _seeded = stack.enter_context(seeded_dovecot(folders, per))
        password = dv.password(USER)
        template = tmp / "first-sync.sqlite"
        spec = {"port": dv.port, "password": password, "cache": str(template), "gc": "service"}
        child = ROOT / "bench" / "bench_daemon_vs_mbsync.py"
        subprocess.run(
            [sys.executable, str(child), "--child-daemon", json.dumps(spec)], check=True, capture_output=True
        )
        envs = {"daemon": dict(os.environ, PYTHONPATH=str(ROOT))}
        if args.base:
            envs[f"daemon at {args.base}"] = dict(
                os.environ, PYTHONPATH=str(stack.enter_context(_worktree(args.base, tmp)))
            )
        broker = stack.enter_context(
            MosquittoBroker(extra_conf="set_tcp_nodelay true\nmax_queued_messages 0")
        )
        for env in envs.values():  # each tree's modules compiled once, as installed
            stack.enter_context(compiled_bytecode(env))
        runs: dict[str, list[Drain]] = {name: [] for name in [*envs, "bare paho", "mosquitto_pub"]}
        e2e: list[tuple[float, float]] = []
        mbsync: list[tuple[float, float]] = []
        events = _event_rows(template)
        for i in range(args.rounds):
            for name, env in envs.items():
                cache = _fresh_copy(template, tmp)
                runs[name].append(_python_child(_PUBLISHER, cache, broker.port, args.inflight, env))
            cache = _fresh_copy(template, tmp)
            runs["bare paho"].append(_python_child(_PAHO, cache, broker.port, args.inflight, envs["daemon"]))
            runs["mosquitto_pub"].append(_mosquitto_pub(template, broker.port, tmp))
            line = ", ".join(f"{n} {r[-1].cpu_s:.2f} s CPU" for n, r in runs.items())
            if args.end_to_end:
                m = run_mbsync(dv.port, password)
                mbsync.append((m.wall_s, m.cpu_s))
                e2e.append(_end_to_end(dv.port, password, broker.port, events, tmp))
                line += f"; daemon run until the app has all {e2e[-1][0]:.2f} s, mbsync {mbsync[-1][0]:.2f} s"
            print(f"  round {i + 1}: {line}", flush=True)
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
    if e2e:
        wall, cpu = sorted(e2e)[len(e2e) // 2]
        m_wall, m_cpu = sorted(mbsync)[len(mbsync) // 2]
        print(
            "\n== the first sync as an app sees it: `cpmsync daemon run`, "
            f"exec -> the app has all {events} events"
        )
        print(f"  daemon  {wall:6.2f} s wall, {cpu:6.2f} s CPU (all threads, start-up included)")
        print(f"  mbsync  {m_wall:6.2f} s wall, {m_cpu:6.2f} s CPU (messages into a Maildir, no app told)")
        print(f"  daemon / mbsync: wall {wall / m_wall:.2f}x, CPU {cpu / m_cpu:.2f}x")


@contextmanager
def _worktree(rev: str, tmp: Path) -> Iterator[Path]:
    """`rev` checked out in a temporary worktree (its source runs as Python)."""
    git = ["git", "-C", str(ROOT)]
    base = tmp / "base"
    subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(base), rev], check=True)
    try:
        yield base
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)


def _event_rows(cache: Path) -> int:
    import sqlite3

    db = sqlite3.connect(cache)
    try:
        return int(db.execute("SELECT count(*) FROM outbox WHERE topic LIKE '%/events'").fetchone()[0])
    finally:
        db.close()


if __name__ == "__main__":
    main()
