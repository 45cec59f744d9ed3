"""First sync of the same Dovecot account: the daemon's sync engine vs mbsync (isync), side by side.

Each side runs as a child process on an empty local store (daemon: a fresh SQLite cache; mbsync:
a fresh Maildir, `Sync Pull`), so wall time and CPU (user + system, from the child's rusage) are
measured the same way. The daemon runs with its defaults (COMPRESS on when offered); mbsync
1.4 has no COMPRESS and fetches whole messages, the daemon envelopes + previews.

With `--lte` both also sync through the fault proxy's link emulator (the simulator's LTE numbers:
70 ms RTT, 5.64 up / 12.74 down Mbit/s), and the daemon's time is compared with the
bandwidth-bound time of its own bytes on the wire (plus a handful of RTTs for login and the first
listing). The machine is shared: compare the ratios measured in one run, not absolute figures.
Two shapes with the same folder count (`--shape 1000x5 --shape 1000x20`) also give each side's
CPU per extra message, with start-up and per-folder costs cancelled out.

    python bench/bench_daemon_vs_mbsync.py [--shape 1000x5 --shape 10000x1] [--rounds 2] [--lte]
        [--gc both]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

if TYPE_CHECKING:
    from tests.support import LinkProfile

# The harness (Dovecot seeding, the proxy, mbsync's config) is imported where it is used, not at
# the top: the daemon's child process runs this file too, and its CPU is the daemon's alone.

USER = "alice"
SETUP_ROUND_TRIPS = 6  # connect+greeting, CAPABILITY, AUTHENTICATE, CAPABILITY, COMPRESS, ENABLE


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    messages: int
    folders: int
    up: int = 0  # bytes on the wire (only through the proxy)
    down: int = 0
    sync_wall_s: float | None = None  # the daemon's connect + sync alone, without Python's start-up
    sync_cpu_s: float | None = None
    sys_s: float = 0.0  # of cpu_s, the kernel's share (mbsync's is mostly creating Maildir files)


def _child(argv: list[str]) -> tuple[float, float, float, str]:
    """Run a child process: (wall s, CPU s of the child from its rusage, of that system s, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed:\n{out.decode(errors='replace')[-3000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_stime, out.decode(errors="replace")


def run_mbsync(port: int, password: str) -> Run:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as td:
        tmp = Path(td)
        from tests.support.mbsync import mbsync_config

        conf = mbsync_config(tmp, port, USER, password, sync="Pull")
        wall, cpu, sys_s, _out = _child(["mbsync", "-q", "-c", str(conf), "-a"])
        mail = tmp / "mail"
        folders = sum(1 for p in mail.rglob("cur") if p.is_dir())
        messages = sum(1 for sub in ("cur", "new") for d in mail.rglob(sub) for _ in d.iterdir())
    return Run(wall, cpu, messages, folders, sys_s=sys_s)


def run_daemon(port: int, password: str, gc_mode: str = "service") -> Run:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as td:
        cache = Path(td) / "cache.sqlite"
        args = json.dumps({"port": port, "password": password, "cache": str(cache), "gc": gc_mode})
        wall, cpu, sys_s, out = _child([sys.executable, __file__, "--child-daemon", args])
        got = json.loads(out.strip().splitlines()[-1])
    return Run(
        wall,
        cpu,
        got["messages"],
        got["folders"],
        sync_wall_s=got["wall"],
        sync_cpu_s=got["cpu"],
        sys_s=sys_s,
    )


def _child_main(spec: dict[str, object]) -> None:
    """The daemon's side as its own process: imported and configured as `cpmsync daemon run` is
    (inside gc_tuning.service_start), unless `gc` is "default" (CPython's collector, to compare)."""
    from _bytecode import DAEMON_MODULES

    from cpmsync.daemon.gc_tuning import service_start

    with service_start() if spec.get("gc", "service") == "service" else nullcontext():
        for name in DAEMON_MODULES:
            importlib.import_module(name)
    asyncio.run(_daemon_child(spec))


async def _daemon_child(spec: dict[str, object]) -> None:
    from cpmsync.daemon.cache import Cache
    from cpmsync.daemon.imap_client import ImapClient
    from cpmsync.daemon.service import setup
    from cpmsync.daemon.settings import DaemonSettings
    from cpmsync.daemon.sync_engine import SyncEngine

    logging.basicConfig(level=logging.WARNING)
    port = int(str(spec["port"]))
    settings = DaemonSettings.model_validate(
        {
            "account": {"id": USER},
            "imap": {
                "host": "127.0.0.1",
                "port": port,
                "tls": "none",
                "username": USER,
                "password": spec["password"],
                "command_timeout_s": 600,
            },
            "cache": {"path": spec["cache"]},
        }
    )
    t0, c0 = time.perf_counter(), time.process_time()
    cache = Cache.open(Path(str(spec["cache"])), USER)
    async with ImapClient("127.0.0.1", port, tls="none", command_timeout_s=600) as imap:
        await setup(imap, settings)
        await SyncEngine(imap, cache, settings).catch_up()
        await imap.logout()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    folders = cache.folders()
    n = sum(f.messages for f in folders.values())
    print(json.dumps({"folders": len(folders), "messages": n, "wall": wall, "cpu": cpu}))
    cache.close()


def _through(link: LinkProfile, host: str, port: int, fn: object, password: str) -> Run:
    from tests.support import ThreadedFaultProxy

    with ThreadedFaultProxy(host, port, link=link) as px:
        run: Run = fn(px.port, password)  # type: ignore[operator]
        run.up, run.down = px.bytes_up, px.bytes_down
    return run


def _median(runs: list[Run]) -> Run:
    pick = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    return Run(
        statistics.median(r.wall_s for r in runs),
        statistics.median(r.cpu_s for r in runs),
        pick.messages,
        pick.folders,
        pick.up,
        pick.down,
        statistics.median(r.sync_wall_s or 0 for r in runs),
        statistics.median(r.sync_cpu_s or 0 for r in runs),
    )


def _loopback_table(d_runs: list[Run], m_runs: list[Run], total: int) -> None:
    d, m = _median(d_runs), _median(m_runs)
    n = max(total, 1)
    print(f"  median  {'wall s':>9}{'CPU s':>9}{'CPU us/msg':>12}")
    alone = Run(d.sync_wall_s or 0, d.sync_cpu_s or 0, d.messages, d.folders)
    for name, r in (("mbsync", m), ("daemon", d), ("(sync)", alone)):
        print(f"  {name:<8}{r.wall_s:>9.2f}{r.cpu_s:>9.2f}{r.cpu_s / n * 1e6:>12.0f}")
    print(
        f"  daemon / mbsync (whole process): wall {d.wall_s / m.wall_s:.2f}x (goal <= 1), "
        f"CPU per message {d.cpu_s / max(m.cpu_s, 1e-9):.2f}x (goal <= 2); without Python's "
        f"start-up: wall {alone.wall_s / m.wall_s:.2f}x, CPU {alone.cpu_s / max(m.cpu_s, 1e-9):.2f}x"
    )


def bench_shape(
    folders: int, per: int, rounds: int, lte: bool, gc_both: bool = False
) -> tuple[list[Run], list[Run]] | None:
    """Print one shape's runs; return its loopback rounds (daemon's, mbsync's)."""
    from _dovecot import seeded_dovecot

    from tests.support import LinkProfile

    with seeded_dovecot(folders, per) as (dv, seeded):
        pw = dv.password(USER)
        total = seeded.messages
        print(
            f"\n== Dovecot, {folders} folders x {per} messages ({total} messages), loopback, {rounds} rounds"
        )
        print("  (shared machine: compare the ratios of one run)")
        d_runs: list[Run] = []
        m_runs: list[Run] = []
        g_runs: list[Run] = []
        for i in range(rounds):  # alternate who goes first: Dovecot's caches warm either way
            order = (run_mbsync, run_daemon) if i % 2 == 0 else (run_daemon, run_mbsync)
            for fn in order:
                r = fn(dv.port, pw)
                (m_runs if fn is run_mbsync else d_runs).append(r)
                name = "mbsync" if fn is run_mbsync else "daemon"
                sync = (
                    f", sync alone {r.sync_wall_s:.2f} s / {r.sync_cpu_s:.2f} s CPU" if r.sync_wall_s else ""
                )
                print(
                    f"  round {i + 1} {name:<7} {r.wall_s:7.2f} s wall {r.cpu_s:7.2f} s CPU "
                    f"({r.sys_s:.2f} s of it system; {r.folders} folders, {r.messages} messages{sync})"
                )
            if gc_both:  # the same daemon with CPython's default collector (gc_tuning.py)
                g_runs.append(run_daemon(dv.port, pw, "default"))
        rounds_run = (d_runs, m_runs) if d_runs else None
        if d_runs:
            _loopback_table(d_runs, m_runs, total)
        if g_runs:
            g, d = _median(g_runs), _median(d_runs)
            print(
                f"  daemon, CPython's default GC: whole {g.cpu_s:.2f} s CPU, sync {g.sync_cpu_s or 0:.2f} s"
                f" -> the service GC settings save {1 - d.cpu_s / g.cpu_s:.0%} of the process's CPU"
                f" ({1 - (d.sync_cpu_s or 0) / (g.sync_cpu_s or 1):.0%} of the sync's)"
            )
        if not lte:
            return rounds_run
        link = LinkProfile.radio("lte")
        print(
            f"\n== the same over emulated LTE ({link.rtt_ms:g} ms RTT, {link.up_mbps} up / "
            f"{link.down_mbps} down Mbit/s)"
        )
        dl = _through(link, dv.host, dv.port, run_daemon, pw)
        ml = _through(link, dv.host, dv.port, run_mbsync, pw)
        for name, r in (("mbsync", ml), ("daemon", dl)):
            bound = link.bound_s(r.up, r.down, SETUP_ROUND_TRIPS)
            print(
                f"  {name:<7} {r.wall_s:8.2f} s wall, {r.messages} messages, wire {r.down} B down / "
                f"{r.up} B up; bandwidth-bound {bound:.2f} s -> {r.wall_s / bound:.1f}x of it"
            )
        bound = link.bound_s(dl.up, dl.down, SETUP_ROUND_TRIPS)
        alone_s = dl.sync_wall_s or dl.wall_s
        print(
            f"  daemon: connect + first sync {alone_s:.2f} s vs bandwidth-bound {bound:.2f} s = "
            f"{alone_s / bound:.2f}x (goal <= 1.5); whole process (with Python's start-up) "
            f"{dl.wall_s / bound:.2f}x; daemon / mbsync wall over LTE {dl.wall_s / ml.wall_s:.2f}x"
        )
        return rounds_run


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child-daemon":
        _child_main(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", help="FOLDERSxMESSAGES (default 1000x5 and 10000x1)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--lte", action="store_true", help="also sync over the emulated LTE link")
    ap.add_argument("--no-loopback", action="store_true", help="only the LTE runs")
    ap.add_argument(
        "--gc",
        choices=("service", "both"),
        default="service",
        help="both: also run the daemon with CPython's default collector, to show what gc_tuning saves",
    )
    args = ap.parse_args()
    if shutil.which("mbsync") is None:
        raise SystemExit("mbsync not found: apt-get install isync")
    done: dict[int, list[tuple[int, list[Run], list[Run]]]] = {}
    from _bytecode import compiled_bytecode

    with compiled_bytecode():  # the daemon's child loads compiled modules, as an installed one does
        for shape in args.shape or ["1000x5", "10000x1"]:
            f, m = (int(x) for x in shape.lower().split("x"))
            got = bench_shape(f, m, 0 if args.no_loopback else args.rounds, args.lte, args.gc == "both")
            if got is not None:
                done.setdefault(f, []).append((f * m, *got))
    for folders, runs in done.items():
        _marginal(folders, sorted(runs, key=lambda r: r[0]))


def _marginal(folders: int, runs: list[tuple[int, list[Run], list[Run]]]) -> None:
    """CPU per extra message between two shapes with the same folders: start-up and per-folder
    work cancel out, what is left is each side's cost of one more message.

    A difference of two noisy figures: mbsync's 1,000 x 5 CPU moved by 0.40-0.52 s between runs of
    one machine, which moves its per-message figure by a quarter. So it is printed twice: from the
    medians of the rounds, and from each shape's least CPU (a round on a shared machine can only
    be slowed by its neighbours, never sped up: the least is the closest to the work itself)."""
    if len(runs) < 2:
        return
    (n0, d0s, m0s), (n1, d1s, m1s) = runs[0], runs[-1]
    extra = n1 - n0
    if extra <= 0:
        return
    print(
        f"\n== CPU per extra message, {folders} folders, {n0} -> {n1} messages"
        " (start-up and per-folder costs cancel out)"
    )
    for label, pick in (("medians of the rounds", statistics.median), ("least of the rounds", min)):
        d_us = (pick(r.sync_cpu_s or 0 for r in d1s) - pick(r.sync_cpu_s or 0 for r in d0s)) / extra * 1e6
        m_us = (pick(r.cpu_s for r in m1s) - pick(r.cpu_s for r in m0s)) / extra * 1e6
        ratio = d_us / max(m_us, 1e-9)
        print(f"  {label:<22} daemon {d_us:4.0f} us, mbsync {m_us:4.0f} us: {ratio:.2f}x (goal <= 2)")


if __name__ == "__main__":
    main()
