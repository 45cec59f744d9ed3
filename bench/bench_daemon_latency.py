"""Change-to-event latency with NOTIFY, on msgstore and on Dovecot: another client APPENDs, the
daemon (IMAP session + MQTT publisher, the same pieces `cpmsync daemon run` runs) syncs the folder
and publishes; a subscriber on the local Mosquitto receives the message_added event. Median and
p99 over N changes, the server's own floor (the same APPENDs seen on a bare IDLE or NOTIFY
session, no daemon), and where the milliseconds go: for each change the first time each stage is
reached after the APPEND was sent (the daemon's functions are wrapped by this script, nothing in
the package is changed for it).

Both servers run in their own process (`cpmsync msgstore serve` on the seeded SQLite file, a
private Dovecot), as in production: a server in the daemon's process would share its GIL. The
bench's own APPEND client sets TCP_NODELAY: imaplib writes the literal and its CRLF in two
sends, and Nagle held the CRLF until the server's delayed ACK (40 ms, counted as the daemon's
before).

A change the server never announces (Dovecot 2.3.19's NOTIFY goes silent once its list index log
rotates, 125-165 APPENDs into a run: docs/peers.md) ends that run with a line saying so, the figures
over the changes before it; a change the daemon had news of but did not publish fails the bench.

    python bench/bench_daemon_latency.py [--peer msgstore dovecot] [--changes 200] [--debounce-ms 0 250]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import aiomqtt
from _daemon_bench import daemon_settings, seed_msgstore
from _dovecot import seeded_dovecot
from imapclient import IMAPClient

from cpmsync.daemon import sync_many
from cpmsync.daemon.cache import Cache, open_cache
from cpmsync.daemon.imap_client import ImapClient, PushStream
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import ImapSession
from cpmsync.daemon.sync_engine import SyncEngine
from tests.support import MosquittoBroker
from tests.support.msgstore_cluster import MsgstoreInstance
from tests.support.raw_imap import RawImap

USER, PASSWORD = "bench", "bench-pw"

# In the order a change passes them; each is the first time reached after the APPEND was sent.
STAGES = (
    "append_ok",  # the bench client got the APPEND's tagged OK
    "notify",  # the daemon's reader queued the server's unsolicited news
    "done_sent",  # the daemon ended IDLE (DONE written)
    "sync",  # SyncEngine.sync_folders entered
    "examine_sent",  # the folder's EXAMINE written
    "apply",  # the answers are read: the cache write starts
    "commit",  # the cache transaction with the folder's events committed
    "publish",  # the event's PUBLISH handed to the MQTT client
    "puback",  # the broker acknowledged it
    "event",  # the subscriber (another process) received it
)


class Marks:
    """Stage timestamps of the change in progress (perf_counter seconds)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.armed = False

    def hit(self, stage: str) -> None:
        if self.armed:
            self.t.setdefault(stage, time.perf_counter())

    def start(self) -> float:
        self.t = {}
        self.armed = True
        return time.perf_counter()


@contextlib.contextmanager
def probes(marks: Marks) -> Iterator[None]:
    """Wrap the daemon's stage functions to call marks.hit; undone on exit."""
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, stage: str, *, after: bool = False, when: Any = None) -> None:
        orig = getattr(owner, name)
        if asyncio.iscoroutinefunction(orig):

            @functools.wraps(orig)
            async def awrapper(*a: Any, **k: Any) -> Any:
                wanted = when is None or when(*a, **k)
                if wanted and not after:
                    marks.hit(stage)
                r = await orig(*a, **k)
                if wanted and after:
                    marks.hit(stage)
                return r

            setattr(owner, name, awrapper)
        else:

            @functools.wraps(orig)
            def wrapper(*a: Any, **k: Any) -> Any:
                wanted = when is None or when(*a, **k)  # before the call: it may consume what `when` reads
                if wanted and not after:
                    marks.hit(stage)
                r = orig(*a, **k)
                if wanted and after:
                    marks.hit(stage)
                return r

            setattr(owner, name, wrapper)
        undo.append(lambda: setattr(owner, name, orig))

    def is_event(_self: Any, topic: str, *a: Any, **k: Any) -> bool:
        return "/events" in str(topic)

    def has_outbox(_self: Any, s: Any) -> bool:
        return bool(s.info.get("outbox_rows"))

    wrap(PushStream, "put", "notify")
    wrap(SyncEngine, "sync_folders", "sync")
    wrap(sync_many, "apply_changes_many", "apply")
    wrap(Cache, "_commit", "commit", after=True, when=has_outbox)
    wrap(aiomqtt.Client, "publish", "publish", when=is_event)
    wrap(aiomqtt.Client, "publish", "puback", after=True, when=is_event)
    orig_send_raw = ImapClient._send_raw

    def send_raw(self: ImapClient, data: bytes) -> None:
        if data.rstrip(b"\r\n").upper() == b"DONE":
            marks.hit("done_sent")
        if b" EXAMINE " in data:
            marks.hit("examine_sent")
        orig_send_raw(self, data)

    ImapClient._send_raw = send_raw  # type: ignore[method-assign]
    undo.append(lambda: setattr(ImapClient, "_send_raw", orig_send_raw))
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


_SUBSCRIBER = """
import asyncio, json, sys, time
import aiomqtt

async def listen() -> None:
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    async with aiomqtt.Client(host, port, identifier="bench-sub") as sub:
        await sub.subscribe(topic, qos=1)
        print("subscribed", flush=True)
        async for m in sub.messages:
            at = time.perf_counter()
            ev = json.loads(bytes(m.payload))
            if ev["kind"] == "message_added" and ev["subject"]:
                print(ev["subject"], at, flush=True)

asyncio.run(listen())
"""


# A change the server announces is published within milliseconds (msgstore) or ~0.5 s (Dovecot's
# NOTIFY_DELAY_MSECS); one not announced within this waits for Dovecot's 30 s mailbox check or the
# daemon's heartbeat, which is not what this bench measures.
SILENT_S = 10.0


@contextlib.asynccontextmanager
async def subscriber(host: str, port: int, topic: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The app's subscriber in its own process, subscribed; stopped on the way out, failure or
    not. Left running when the bench failed, it saw the broker stop under it and printed its own
    "Disconnected during message iteration" traceback ([code:128], the socket closed) above the
    bench's, as if the subscriber had been the fault: its stderr is kept, shown only when it
    exits by itself."""
    sub = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SUBSCRIBER,
        host,
        str(port),
        topic,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert sub.stdout is not None
        if (await sub.stdout.readline()).strip() != b"subscribed":
            raise RuntimeError(f"the subscriber did not start: {await _stderr(sub)}")
        yield sub
    finally:
        if sub.returncode is None:
            sub.terminate()
        await sub.wait()


async def _stderr(sub: asyncio.subprocess.Process) -> str:
    assert sub.stderr is not None
    return (await sub.stderr.read()).decode(errors="replace").strip()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


@contextlib.contextmanager
def peer_server(peer: str, tmp: Path, folders: int) -> Iterator[tuple[int, str, str, list[str]]]:
    """(port, user, password, folder names) of a seeded server in its own process."""
    if peer == "msgstore":
        store, names = seed_msgstore(tmp / "store.sqlite", USER, PASSWORD, folders, 2)
        store.close()
        with MsgstoreInstance(f"sqlite:///{tmp / 'store.sqlite'}") as ms:
            yield ms.port, USER, PASSWORD, names
        return
    with seeded_dovecot(folders, 2, quiet=True) as (dv, seeded):
        yield dv.port, "alice", dv.password("alice"), list(seeded.folders)


FLOOR_SESSIONS = {
    "IDLE": ("EXAMINE {box}",),  # RFC 2177 on the folder that changes
    "NOTIFY": ("NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName))",),
}


async def server_floor(
    port: int, user: str, password: str, names: list[str], n: int
) -> dict[str, list[float]]:
    """Per push kind, ms from APPEND sent to the first news line on a bare session (no daemon,
    nothing but a socket read): the least any client can get from this server."""
    out: dict[str, list[float]] = {}
    box = names[0]
    c = IMAPClient("127.0.0.1", port, ssl=False)
    c._imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.login(user, password)
    for kind, setup in FLOOR_SESSIONS.items():
        out[kind] = []
        async with RawImap("127.0.0.1", port) as raw:
            await raw.login(user, password)
            for text in setup:
                await raw.command(text.format(box=box))
            await raw.send(b"i IDLE\r\n")
            await raw.readline()  # "+ idling"
            for i in range(n):
                await raw.unsolicited(0.05)  # what an earlier change still brought
                t0 = time.perf_counter()
                await asyncio.to_thread(c.append, box, f"Subject: floor-{i}\r\n\r\nhi\r\n".encode())
                await raw.readline()
                out[kind].append((time.perf_counter() - t0) * 1000)
            await raw.send(b"DONE\r\n")
    c.logout()
    return out


async def run(
    peer: str, changes: int, debounce_ms: int, folders: int
) -> tuple[list[float], dict[str, list[float]], float, int | None]:
    """(latency from APPEND sent per change, stage -> ms from APPEND sent per change, CPU ms of this
    process per change: the daemon's, with the bench's APPEND client thread, the first change the
    server never announced: the run ends there)."""
    marks = Marks()
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as td, MosquittoBroker() as mq, probes(marks):
        tmp = Path(td)
        with peer_server(peer, tmp, folders) as (port, user, password, names):
            floor = await server_floor(port, user, password, names, min(changes, 20))
            print(
                f"{peer:<9} the server's own floor, APPEND sent -> first news line on a bare session: "
                + ", ".join(f"{k} median {statistics.median(v):.1f} ms" for k, v in floor.items())
            )
            settings = daemon_settings(
                port,
                user,
                password,
                tmp / "cache.sqlite",
                imap={"debounce_ms": debounce_ms, "command_timeout_s": 60},
                mqtt={"host": mq.host, "port": mq.port},
            )
            cache = open_cache(settings)
            publisher = Publisher(settings.mqtt, user, cache)
            session = ImapSession(settings, cache, publisher)
            seen: dict[str, float] = {}
            got = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(publisher.run())
                sess = tg.create_task(session.run())
                await session.ready.wait()
                # The app: its own process (in this one it would share the daemon's event loop and
                # wait for its CPU work after each publish). perf_counter is CLOCK_MONOTONIC on
                # Linux, the same clock in both processes.
                async with subscriber(mq.host, mq.port, f"cpm/{user}/folders/+/events") as sub:

                    async def listen() -> None:
                        assert sub.stdout is not None
                        async for line in sub.stdout:
                            subject, _, at = line.decode().rpartition(" ")
                            seen[subject] = float(at)
                            got.set()
                        raise RuntimeError(f"the subscriber exited: {await _stderr(sub)}")

                    lt = tg.create_task(listen())
                    silent_at, cpu_ms = await changes_run(
                        port, user, password, names, changes, marks, stages, latencies, seen, got
                    )
                    lt.cancel()
                session.stop.set()
                await sess
                await publisher.close()
            cache.close()
    return latencies, stages, cpu_ms, silent_at


async def changes_run(
    port: int,
    user: str,
    password: str,
    names: list[str],
    changes: int,
    marks: Marks,
    stages: dict[str, list[float]],
    latencies: list[float],
    seen: dict[str, float],
    got: asyncio.Event,
) -> tuple[int | None, float]:
    """APPEND `changes` messages one by one, each measured from rest; (the first change the server
    never announced, or None; CPU ms of this process per change measured)."""
    c = IMAPClient("127.0.0.1", port, ssl=False)
    c._imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.login(user, password)
    await asyncio.sleep(0.5)  # the daemon is idle (its IDLE answered) before the first
    cpu0 = time.process_time()
    silent_at: int | None = None
    for i in range(changes):
        subject = f"latency-{i}"
        folder = names[(i + 1) % len(names)]
        got.clear()
        body = f"From: x@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
        t0 = marks.start()
        await asyncio.to_thread(c.append, folder, body)
        marks.hit("append_ok")
        try:
            async with asyncio.timeout(SILENT_S):
                while subject not in seen:
                    await got.wait()
                    got.clear()
        except TimeoutError:
            if "notify" in marks.t:
                raise RuntimeError(
                    f"change {i}: the daemon read the server's news but published nothing in {SILENT_S:g} s"
                ) from None
            silent_at = i  # the server said nothing: its push went silent (see main's note)
            break
        marks.t["event"] = seen[subject]
        marks.armed = False
        latencies.append((seen[subject] - t0) * 1000)
        for s in STAGES:
            if s in marks.t:
                stages[s].append((marks.t[s] - t0) * 1000)
        # Let the daemon settle back into IDLE: each change is measured from rest.
        await asyncio.sleep(0.02)
    marks.armed = False
    cpu_ms = (time.process_time() - cpu0) * 1000 / max(1, len(latencies))
    c.logout()
    return silent_at, cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", nargs="*", default=["msgstore", "dovecot"], choices=["msgstore", "dovecot"])
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--debounce-ms", type=int, nargs="*", default=[0, 250])
    ap.add_argument("--folders", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"change-to-event latency with NOTIFY, {args.folders} folders, {args.changes} APPENDs per run")
    silenced: list[int] = []
    for peer in args.peer:
        for d in args.debounce_ms:
            ms, stages, cpu_ms, silent_at = asyncio.run(run(peer, args.changes, d, args.folders))
            if silent_at is not None:
                print(
                    f"{peer:<9} debounce_ms={d:>4}: change {silent_at} was never announced by the server (no "
                    f"news within {SILENT_S:g} s): the run ends there, figures over the {len(ms)} before it"
                )
                if peer == "dovecot":
                    silenced.append(silent_at)
            share = [e - n for e, n in zip(stages["event"], stages["notify"], strict=True)]
            print(
                f"{peer:<9} debounce_ms={d:>4}: APPEND sent -> event: median {statistics.median(ms):.1f} ms, "
                f"p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms (n={len(ms)}); the daemon's share "
                f"(NOTIFY news read -> event): median {statistics.median(share):.1f} ms, "
                f"p99 {pct(share, 99):.1f} ms; CPU per change {cpu_ms:.1f} ms (daemon + APPEND client)"
            )
            for label, f in (("median", statistics.median), ("p99", lambda v: pct(v, 99))):
                print(
                    f"    {label:<6} ms from APPEND sent: "
                    + ", ".join(f"{s} {f(v):.1f}" for s, v in stages.items() if len(v) == len(ms))
                )
    if "dovecot" in args.peer:
        print(
            "dovecot: IDLE and NOTIFY wait NOTIFY_DELAY_MSECS (500 ms, compiled in: mailbox-watch.c, "
            "mailbox-list-index-notify.c) after a change 'to allow bundling multiple changes together'; "
            "that floor is the server's"
        )
    if silenced:
        print(
            "dovecot: its NOTIFY goes silent once the list index log (dovecot.list.index.log) rotates at "
            "64 KB, here after 125-165 APPENDs to 100 folders, on a bare session too (docs/peers.md); a "
            "change is then announced only by its 30 s mailbox check, or found at the daemon's heartbeat"
        )


if __name__ == "__main__":
    main()
