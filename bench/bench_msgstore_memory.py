"""Benchmark: msgstore's memory per session, and what a client that does not read costs it.

msgstore runs as in production (`cpmsync msgstore serve`, its own process, SQLite); RSS is read
from /proc through psutil. Prints:
  - RSS per idle session: N sessions logged in with INBOX selected, doing nothing
    ((RSS with them - RSS before) / N), next to Dovecot's (the PSS of all its processes, per session);
  - RSS per busy session: N sessions each in a loop of FETCH 1:* (FLAGS BODY.PEEK[]) over 20
    messages, sampled while they run;
  - a client that pipelines 300,000 NOOPs and reads nothing: the server's RSS before, while the
    client is stalled, and after it read everything (output backpressure: it must not grow).
Run from the repo root: python bench/bench_msgstore_memory.py [--sessions 150] [--busy 20]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from _dovecot import start_dovecot
from bench_imaptest_stress import PASSWORD, USER, _msgstore

from cpmsync.cpmdata import OWNER, chat_message, random_tel, random_uuid

MB = 2**20


def _rss(pid: int, children: bool = False) -> float:
    """RSS of the process; with children (Dovecot's imap processes), their PSS summed: pages the
    processes share are counted once, split between them."""
    p = psutil.Process(pid)
    if not children:
        return float(p.memory_info().rss) / MB
    total = 0
    for q in [p, *p.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += q.memory_full_info().pss
    return total / MB


class Line:
    """A blocking client that sends a command and reads to its tagged reply."""

    def __init__(self, port: int, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.n = 0
        self.buf = b""
        self._until(b"\r\n")
        self.cmd(f'LOGIN {USER} "{password}"'.encode())

    def _until(self, marker: bytes) -> None:
        while marker not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf = self.buf[-len(marker) :] + chunk
        self.buf = b"\r\n"  # a tagged reply starts a line

    def cmd(self, text: bytes, literal: bytes | None = None) -> None:
        self.n += 1
        tag = b"m%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        self._until(b"\r\n" + tag + b" ")


def _messages(n: int) -> list[bytes]:
    import random
    from datetime import UTC, datetime

    rng = random.Random(1)
    when = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    return [chat_message(rng, random_tel(rng), OWNER, when, random_uuid(rng)) for _ in range(n)]


def idle_sessions(port: int, password: str, pid: int, n: int, children: bool) -> float:
    """RSS per session of n idle sessions with INBOX selected."""
    before = _rss(pid, children)
    lines = []
    for _ in range(n):
        c = Line(port, password)
        c.cmd(b"SELECT INBOX")
        lines.append(c)
    time.sleep(1)
    after = _rss(pid, children)
    for c in lines:
        c.sock.close()
    time.sleep(1.5)  # let Dovecot's session processes exit
    return (after - before) / n


def busy_sessions(
    port: int, password: str, pid: int, n: int, secs: float, children: bool
) -> tuple[float, float]:
    """(RSS before, peak RSS) while n sessions FETCH every message in a loop."""
    before = _rss(pid, children)
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            c = Line(port, password)
            c.cmd(b"SELECT INBOX")
            while not stop.is_set():
                c.cmd(b"FETCH 1:* (FLAGS BODY.PEEK[])")
            c.sock.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=loop) for _ in range(n)]
    for t in threads:
        t.start()
    peak = before
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        time.sleep(0.2)
        peak = max(peak, _rss(pid, children))
    stop.set()
    for t in threads:
        t.join(60)
    if errors:
        print(f"  busy sessions failed: {errors[0]!r}")
    return before, peak


def noop_flood(port: int, password: str, pid: int, count: int) -> tuple[float, float, float]:
    """(RSS before, RSS while the client is stalled not reading, RSS after it read everything)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.recv(4096)
    sock.sendall(f'l LOGIN {USER} "{password}"\r\n'.encode())
    got = b""
    while b"l OK" not in got:
        got += sock.recv(4096)
    before = _rss(pid)
    data = b"".join(b"n%d NOOP\r\n" % i for i in range(count))
    sock.setblocking(False)
    sent, last = 0, time.monotonic()
    while sent < len(data) and time.monotonic() - last < 2:
        try:
            sent += sock.send(data[sent : sent + 65536])
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    time.sleep(1)
    stalled = _rss(pid)
    sock.setblocking(True)
    end = b"n%d OK" % (count - 1)
    tail = b""
    while end not in tail:
        if sent < len(data):
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(data[sent : sent + 65536])
            sock.setblocking(True)
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        tail = tail[-32:] + chunk
    after = _rss(pid)
    sock.close()
    return before, stalled, after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--sessions", type=int, default=150, help="idle sessions (msgstore allows 200 per address)"
    )
    ap.add_argument("--busy", type=int, default=20, help="busy sessions")
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--noops", type=int, default=300_000)
    a = ap.parse_args()
    msgs = _messages(20)
    print(f"msgstore memory ({a.sessions} idle sessions, {a.busy} busy ones); shared 2-core machine")
    rows: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="cpm-mem-") as d, _msgstore(Path(d)) as ms:
        setup = Line(ms.port, PASSWORD)
        for m in msgs:
            setup.cmd(b"APPEND INBOX", m)
        start = _rss(ms.pid)
        idle = idle_sessions(ms.port, PASSWORD, ms.pid, a.sessions, False)
        b0, bpeak = busy_sessions(ms.port, PASSWORD, ms.pid, a.busy, a.secs, False)
        f0, fstall, fend = noop_flood(ms.port, PASSWORD, ms.pid, a.noops)
        print(f"msgstore RSS at start (20 messages): {start:.1f} MB")
        rows["idle session, RSS MB each"] = (f"{idle:.3f}", "")
        rows["busy sessions, RSS MB each"] = (f"{(bpeak - b0) / a.busy:.3f}", "")
        print(
            f"NOOP flood ({a.noops:,} pipelined, client not reading): server RSS {f0:.1f} MB before, "
            f"{fstall:.1f} MB while stalled, {fend:.1f} MB after (+{fstall - f0:.1f} MB at most)"
        )
    dv = start_dovecot(users={USER: PASSWORD})
    try:
        pw = dv.password(USER)
        setup = Line(dv.port, pw)
        for m in msgs:
            setup.cmd(b"APPEND INBOX", m)
        assert dv.pid is not None
        didle = idle_sessions(dv.port, pw, dv.pid, a.sessions, True)
        d0, dpeak = busy_sessions(dv.port, pw, dv.pid, a.busy, a.secs, True)
        idle_key, busy_key = "idle session, RSS MB each", "busy sessions, RSS MB each"
        rows[idle_key] = (rows[idle_key][0], f"{didle:.3f}")
        rows[busy_key] = (rows[busy_key][0], f"{(dpeak - d0) / a.busy:.3f}")
    finally:
        dv.close()
    print(f"\n{'':30}{'msgstore':>10}{'dovecot':>10}")
    for k, (o, t) in rows.items():
        print(f"{k:30}{o:>10}{t:>10}")
    print("(Dovecot: a process per session; its figures are the PSS of all its processes)")


if __name__ == "__main__":
    main()
