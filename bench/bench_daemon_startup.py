"""The daemon's start-up CPU: what a `cpmsync daemon run` process spends before its first byte.

A daemon started by systemd at boot (or restarted after a crash) pays Python's imports before it
does anything useful; mbsync, a C program, pays next to nothing. Three figures, each the median
of `--rounds` child processes, measured in this run:

- interpreter: `python -c pass`, the floor no change to cpmsync can lower;
- imports: the CPU the daemon's modules take to import (the set bench_daemon_vs_mbsync's child
  imports), measured inside the child with time.process_time around the imports alone; plainly,
  and the way `cpmsync daemon run` imports them (collector off, gc_tuning.service_start);
- first byte: the real entry, `cpmsync daemon run --config ...`, from exec to the moment its first
  TCP connection (IMAP or MQTT, both to listening sockets of this bench) is accepted: the CPU of
  all its threads then (/proc/<pid>/task/*/schedstat, nanoseconds). mbsync's, measured the same
  way, when it is installed.

Children run as an installed daemon does, with every module's bytecode already compiled (pip
compiles at install; the systemd unit's ProtectSystem=strict could not write it): into a private
PYTHONPYCACHEPREFIX, warmed by one run, whatever PYTHONDONTWRITEBYTECODE says. `--from-source`
keeps this environment's setting instead (with PYTHONDONTWRITEBYTECODE=1, an editable checkout
compiles cpmsync's own modules at every start).

The machine is shared: compare the figures of one run, not absolute ones across runs.

    python bench/bench_daemon_startup.py [--rounds 5] [--top 15] [--from-source]
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from _bytecode import DAEMON_IMPORTS, compiled_bytecode

from tests.support.mbsync import mbsync_config

PAUSED = "from cpmsync.daemon.gc_tuning import service_start\nwith service_start():\n    " + DAEMON_IMPORTS
"""The same, the way `cpmsync daemon run` imports: without the collector (gc_tuning.service_start)."""

_TIMED = "import time\nt0 = time.process_time()\n{imports}\nprint(time.process_time() - t0)"

ENV = dict(os.environ)
"""The children's environment (main() points it at a private bytecode cache)."""


def _import_cpu_s(imports: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _TIMED.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stdout
    return float(out.split()[-1])


def _process_cpu_s(argv: Sequence[str]) -> float:
    """CPU (user + system) of a child process that runs to its end, from its rusage."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _pid, status, ru = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed")
    return ru.ru_utime + ru.ru_stime


def threads_cpu_s(pid: int) -> float:
    """CPU so far of every thread of `pid` (schedstat's first field: ns on a CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def _cpu_to_first_connect(
    argv: Sequence[str], listeners: Sequence[socket.socket], env: dict[str, str]
) -> float:
    """Start `argv`, wait for its first connection to one of `listeners`, return its CPU then; kill it."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select(list(listeners), [], [], 60.0)
        if not ready:
            err = (
                proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
            )
            raise SystemExit(f"{argv[0]} made no connection in 60 s\n{err[-2000:]}")
        cpu = threads_cpu_s(proc.pid)
        conn, _ = ready[0].accept()
        conn.close()
        return cpu
    finally:
        proc.kill()
        proc.wait()


def _listener() -> socket.socket:
    s = socket.create_server(("127.0.0.1", 0))
    s.listen(8)
    return s


def _cpmsync_argv() -> list[str]:
    """The console script installed next to this interpreter (the real entry), else `-m`."""
    script = Path(sys.executable).with_name("cpmsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cpmsync.cli"]


def daemon_first_byte_cpu_s(tmp: Path) -> float:
    imap, mqtt = _listener(), _listener()
    try:
        config = tmp / "daemon.toml"
        cache = tmp / "cache.sqlite"
        cache.unlink(missing_ok=True)
        config.write_text(
            f'[account]\nid = "bench"\n'
            f'[imap]\nhost = "127.0.0.1"\nport = {imap.getsockname()[1]}\ntls = "none"\nusername = "u"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt.getsockname()[1]}\n'
            f'[cache]\npath = "{cache}"\n'
        )
        env = dict(ENV, CPMSYNC_IMAP__PASSWORD="p")
        return _cpu_to_first_connect(
            [*_cpmsync_argv(), "daemon", "run", "--config", str(config)], [imap, mqtt], env
        )
    finally:
        imap.close()
        mqtt.close()


def mbsync_first_byte_cpu_s(tmp: Path) -> float:
    imap = _listener()
    try:
        work = Path(tempfile.mkdtemp(dir=tmp))
        conf = mbsync_config(work, imap.getsockname()[1], "u", "p", sync="Pull")
        return _cpu_to_first_connect(["mbsync", "-q", "-c", str(conf), "-a"], [imap], ENV)
    finally:
        imap.close()


def top_imports(imports: str, n: int) -> list[tuple[int, str]]:
    """The `n` modules with the most own import time (µs, -X importtime; inflated by its bookkeeping)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", imports],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stderr
    rows = [m.groups() for m in re.finditer(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", err)]
    return sorted(((int(us), name) for us, name in rows), reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--top", type=int, default=0, help="also list the N modules with the most own import time"
    )
    ap.add_argument(
        "--from-source", action="store_true", help="keep this environment's PYTHONDONTWRITEBYTECODE"
    )
    args = ap.parse_args()
    with nullcontext() if args.from_source else compiled_bytecode(ENV):
        bytecode = "from source" if args.from_source and ENV.get("PYTHONDONTWRITEBYTECODE") else "compiled"
        _measure(args.rounds, args.top, bytecode)


def _measure(rounds: int, top: int, bytecode: str) -> None:
    figures: list[tuple[str, float]] = []

    def add(label: str, one: Callable[[], float]) -> None:
        figures.append((label, statistics.median(one() for _ in range(rounds))))

    add("interpreter (python -c pass)", lambda: _process_cpu_s([sys.executable, "-c", "pass"]))
    add("daemon modules, import alone", lambda: _import_cpu_s(DAEMON_IMPORTS))
    try:
        add("daemon modules, as daemon run imports them", lambda: _import_cpu_s(PAUSED))
    except subprocess.CalledProcessError:
        pass  # a cpmsync from before gc_tuning.service_start
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as td:
        tmp = Path(td)
        add("cpmsync daemon run: exec to first connect", lambda: daemon_first_byte_cpu_s(tmp))
        if shutil.which("mbsync"):
            add("mbsync: exec to first connect", lambda: mbsync_first_byte_cpu_s(tmp))
    print(f"start-up CPU, median of {rounds} processes, bytecode {bytecode} (ms):")
    for label, cpu in figures:
        print(f"  {label:<44} {cpu * 1000:8.1f}")
    if top:
        print("\nmost own import time, one process (-X importtime, µs):")
        for us, name in top_imports(DAEMON_IMPORTS, top):
            print(f"  {us:8d}  {name}")


if __name__ == "__main__":
    main()
