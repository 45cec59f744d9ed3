"""Benchmark: the msgstore IMAP server over the wire, side by side with Dovecot on the same data.

Both servers get the same CPM-like account (folder names from `cpm_folder_names`, one small chat
message per folder) and are driven by the same minimal blocking client (it only frames lines and
waits for the tagged reply, so client cost is equal and small). Prints:
  - LIST "" * RETURN (STATUS (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)) over N folders (median ms, ratio)
  - APPEND throughput (messages/s) and server CPU per APPEND (user + system ms, steadier on a busy
    host): `--rounds` rounds of `--appends` each, msgstore and Dovecot interleaved (who goes first
    alternates), ratio per round against the Dovecot run next to it, then the median and range.
    Durability as alike as the two allow: Dovecot runs with its test config's mail_fsync=never, so
    the first msgstore row is sqlite_synchronous=OFF (no fsync either); the second is NORMAL (the
    WAL is fsynced at each checkpoint, every few hundred APPENDs: the spikes that made single runs
    range from 0.4x to 1x)
  - LIST (CHANGEDSINCE (m)) with 3 changed folders among 1,000 / 10,000 / ... (msgstore only: no other
    server implements it), next to the full LIST-STATUS it replaces.
Run from the repo root: python bench/bench_msgstore_server.py [--folders 10000] [--sizes 1000,10000,100000]
[--rounds 7] [--appends 600]
[--in-process: msgstore in a thread of the benchmark process, the setup before 27 Nov 2026]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from _dovecot import cpm_folder_names, seeded_dovecot

from cpmsync.msgstore import BulkMailbox, BulkMessage, MessageStore, MsgstoreSettings
from cpmsync.msgstore.server import ImapServer

USER, PASSWORD = "alice", "alice-pw"
MSG = (
    b"From: <tel:+15143457900>\r\nTo: <tel:+15145550000>\r\nSubject: chat\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\n\r\nhello there\r\n"
)


class Wire:
    """Send a command, read until its tagged reply; returns (seconds, bytes received)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=300)
        self.buf = b""
        self.n = 0
        self._read_line()

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def cmd(self, text: bytes, literal: bytes | None = None) -> tuple[float, int]:
        self.n += 1
        tag = b"b%d" % self.n
        t0 = time.perf_counter()
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d}\r\n" % len(literal))
            if not self._read_line().startswith(b"+"):
                raise RuntimeError("no continuation")
            self.sock.sendall(literal + b"\r\n")
        got = 0
        # look for the tagged line only in the newest bytes (no rescans, no quadratic joins)
        marker = b"\r\n" + tag + b" "
        tail = b"\r\n" + self.buf
        self.buf = b""
        while marker not in tail:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            got += len(chunk)
            tail = tail[-len(marker) :] + chunk
        data = tail
        i = data.index(marker)
        while b"\r\n" not in data[i + 2 :]:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            got += len(chunk)
            data += chunk
        end = data.index(b"\r\n", i + 2)
        status = data[i + len(marker) : end]
        self.buf = data[end + 2 :]
        if not status.startswith(b"OK"):
            raise RuntimeError(f"{text[:40]!r}: {status[:120]!r}")
        return time.perf_counter() - t0, got


def _settings(synchronous: str = "NORMAL") -> MsgstoreSettings:
    return MsgstoreSettings(server={"listen": ["127.0.0.1:0"]}, store={"sqlite_synchronous": synchronous})


class ThreadedMsgstore:
    """Our server on its own loop in a thread of this process (--in-process): it then shares the
    GIL with the benchmark client, a handicap Dovecot (its own processes) does not have."""

    def __init__(self, store: MessageStore) -> None:
        self.settings = _settings()
        self.store = store
        self.server: ImapServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    pid = None  # shares this process with the client: no separate server CPU figure

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.server = ImapServer(self.settings, self.store)
            await self.server.serve()

        asyncio.run(main())

    def __enter__(self) -> ThreadedMsgstore:
        self.thread.start()
        while self.server is None or not self.server.ready.is_set():
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.server is not None
        self.loop.call_soon_threadsafe(self.server.stop)
        self.thread.join(10)


def _serve_in_child(db_url: str, ports: Any, stop: Any, synchronous: str) -> None:
    """Child process body: serve `db_url` until `stop` is set, then stop cleanly."""

    async def serve() -> None:
        store = MessageStore(db_url, sqlite_synchronous=synchronous)
        server = ImapServer(_settings(synchronous), store)
        task = asyncio.create_task(server.serve())
        await server.ready.wait()
        ports.put(server.port)
        await asyncio.to_thread(stop.wait)
        server.stop()
        await task
        store.close()

    asyncio.run(serve())


class ProcessMsgstore:
    """Our server in its own process (the default), as it runs in production and as Dovecot runs
    here: the client's Python work does not compete with the server for one GIL."""

    def __init__(self, db_url: str, synchronous: str = "NORMAL") -> None:
        ctx = mp.get_context("spawn")
        self._ports: Any = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=_serve_in_child, args=(db_url, self._ports, self._stop, synchronous), daemon=True
        )
        self.port = 0
        self.pid: int | None = None

    def __enter__(self) -> ProcessMsgstore:
        self._proc.start()
        self.port = int(self._ports.get(timeout=120))
        self.pid = self._proc.pid
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def _server(
    store: MessageStore, db_url: str, in_process: bool, synchronous: str = "NORMAL"
) -> ThreadedMsgstore | ProcessMsgstore:
    return ThreadedMsgstore(store) if in_process else ProcessMsgstore(db_url, synchronous)


def _store(db: Path, folders: list[str], synchronous: str = "NORMAL") -> MessageStore:
    store = MessageStore(f"sqlite:///{db}", sqlite_synchronous=synchronous)
    store.add_user(USER, PASSWORD)
    batch = 2000
    for i in range(0, len(folders), batch):
        store.bulk_load(
            USER, [BulkMailbox(f, [BulkMessage(MSG, ("\\Seen",), None)]) for f in folders[i : i + batch]]
        )
    return store


def _median_ms(w: Wire, text: bytes, repeats: int) -> tuple[float, int]:
    samples, size = [], 0
    for _ in range(repeats):
        s, size = w.cmd(text)
        samples.append(s * 1000)
    return statistics.median(samples), size


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a server process and all its children (Dovecot's imap
    processes are children of its master); less sensitive than wall time to a busy machine."""
    if pid is None:
        return float("nan")
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            c = p.cpu_times()
            total += c.user + c.system
    return total


def _appends(w: Wire, n: int, server_pid: int | None) -> tuple[float, float]:
    """(APPENDs per second of wall time, server CPU ms per APPEND)."""
    cpu0 = _cpu_s(server_pid)
    t0 = time.perf_counter()
    for _ in range(n):
        w.cmd(b"APPEND INBOX", MSG)
    wall = time.perf_counter() - t0
    return n / wall, (_cpu_s(server_pid) - cpu0) * 1000 / n


LIST_STATUS = b'LIST "" * RETURN (STATUS (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ))'


@dataclass
class _Side:
    """One server under the APPEND rounds: its client, the pid whose CPU is counted, the figures."""

    name: str
    wire: Wire
    pid: int | None
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def _append_rounds(sides: list[_Side], dovecot: _Side, rounds: int, appends: int) -> None:
    """`rounds` x `appends` APPENDs per server, interleaved: each round runs every server once,
    who goes first alternating, so a change in the machine's load falls on all of them alike."""
    for s in [*sides, dovecot]:
        for _ in range(max(10, appends // 10)):  # warm: first WAL pages, Dovecot's index files
            s.wire.cmd(b"APPEND INBOX", MSG)
    for i in range(rounds):
        order = [*sides, dovecot] if i % 2 == 0 else [dovecot, *reversed(sides)]
        for s in order:
            rate, cpu = _appends(s.wire, appends, s.pid)
            s.rates.append(rate)
            s.cpu_ms.append(cpu)
        figures = "  ".join(f"{s.name} {s.rates[-1]:5.0f}/s {s.cpu_ms[-1]:.3f} ms" for s in [*sides, dovecot])
        print(f"  round {i + 1}: {figures}")


def _print_appends(sides: list[_Side], dovecot: _Side) -> None:
    dv_cpu = statistics.median(dovecot.cpu_ms)
    head = f"{'msg/s':>9}{'CPU ms':>9}{'rate ratio':>12}{'range':>12}{'CPU ratio':>11}"
    print(f"{'APPEND (median of rounds)':28}{head}")
    for s in [*sides, dovecot]:
        cpu = statistics.median(s.cpu_ms)
        line = f"{s.name:28}{statistics.median(s.rates):9.0f}{cpu:9.3f}"
        if s is not dovecot:
            ratios = [o / t for o, t in zip(s.rates, dovecot.rates, strict=True)]
            span = f"{min(ratios):.2f}-{max(ratios):.2f}"
            line += f"{statistics.median(ratios):12.2f}{span:>12}{cpu / dv_cpu:11.2f}"
        print(line)


def run(folders: int, sizes: list[int], repeats: int, appends: int, rounds: int, in_process: bool) -> None:
    names = cpm_folder_names(folders)
    where = "a thread of the benchmark process" if in_process else "its own process"
    print(f"LIST-STATUS and APPEND, {folders} folders x 1 message, same client, median of {repeats}")
    print(f"msgstore runs in {where}; APPEND waits for the continuation (no LITERAL+), as for Dovecot")
    print(f"APPEND: {rounds} rounds x {appends}, interleaved; server CPU is user + system of its processes")
    with tempfile.TemporaryDirectory(prefix="cpm-bench-") as d, contextlib.ExitStack() as stack:
        sides: list[_Side] = []
        for sync in ("OFF", "NORMAL"):
            db = Path(d) / f"{sync.lower()}.sqlite"
            store = _store(db, names, sync)
            stack.callback(store.close)
            ms = _server(store, f"sqlite:///{db}", in_process, sync)
            stack.enter_context(ms)
            w = Wire("127.0.0.1", ms.port)
            w.cmd(f'LOGIN {USER} "{PASSWORD}"'.encode())
            sides.append(_Side(f"msgstore sync={sync}", w, ms.pid))
        dv, _seeded = stack.enter_context(seeded_dovecot(folders, 1, user=USER))
        w = Wire(dv.host, dv.port)
        w.cmd(f'LOGIN {USER} "{dv.password(USER)}"'.encode())
        dovecot = _Side("dovecot fsync=never", w, dv.pid)
        listing = {}
        for s in (sides[0], dovecot):
            s.wire.cmd(LIST_STATUS)  # warm
            listing[s.name] = _median_ms(s.wire, LIST_STATUS, repeats)
        _append_rounds(sides, dovecot, rounds, appends)
    (ours_ms, ours_bytes), (dv_ms, dv_bytes) = listing[sides[0].name], listing[dovecot.name]
    print(f"{'':28}{'msgstore':>12}{'dovecot':>12}{'ratio':>8}")
    print(f"{'LIST-STATUS ms':28}{ours_ms:12.1f}{dv_ms:12.1f}{ours_ms / dv_ms:8.2f}")
    print(f"{'LIST-STATUS bytes':28}{ours_bytes:12d}{dv_bytes:12d}{ours_bytes / max(1, dv_bytes):8.2f}")
    _print_appends(sides, dovecot)
    if not sizes:
        return

    print("\nLIST (CHANGEDSINCE) with 3 changed folders (msgstore; median ms / bytes on the wire)")
    print(f"{'folders':>10}{'CHANGEDSINCE ms':>18}{'bytes':>10}{'LIST-STATUS ms':>17}{'bytes':>10}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="cpm-bench-") as d:
            store = _store(Path(d) / f"s{n}.sqlite", cpm_folder_names(n))
            with _server(store, f"sqlite:///{Path(d) / f's{n}.sqlite'}", in_process) as ms:
                w = Wire("127.0.0.1", ms.port)
                w.cmd(f'LOGIN {USER} "{PASSWORD}"'.encode())
                m = store.user_highest_modseq(USER)
                for name in cpm_folder_names(n)[1:4]:
                    w.cmd(f'APPEND "{name}"'.encode(), MSG)
                q = b'LIST (CHANGEDSINCE (%d)) "" * RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))' % m
                w.cmd(LIST_STATUS)  # warm the page cache like the first table
                cs_ms, cs_bytes = _median_ms(w, q, repeats)
                full_ms, full_bytes = _median_ms(w, LIST_STATUS, max(1, repeats // 2))
            store.close()
        print(f"{n:>10}{cs_ms:>18.2f}{cs_bytes:>10}{full_ms:>17.1f}{full_bytes:>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--folders", type=int, default=10_000)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--appends", type=int, default=600, help="APPENDs per server and round")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved APPEND rounds")
    ap.add_argument(
        "--in-process", action="store_true", help="run msgstore in a thread of this process (old setup)"
    )
    a = ap.parse_args()
    run(a.folders, [int(x) for x in a.sizes.split(",") if x], a.repeats, a.appends, a.rounds, a.in_process)


if __name__ == "__main__":
    main()
