"""Benchmark: Dovecot's imaptest in stress mode against msgstore and Dovecot, side by side.

Each server runs as in production, in its own process(es) (msgstore: `cpmsync msgstore serve` on a
SQLite file, auth-failure delay off; Dovecot: a private instance), and gets the same load: imaptest's
random mix of LOGIN, SELECT, FETCH, STORE, APPEND, EXPUNGE... from N clients for S seconds, taking
messages from the same CPM-like mbox. The servers run one after the other, each alone on the machine
(as far as the shared machine allows); with `--rounds N` each gets N runs, alternating who goes first
so that a change in the machine's load falls on both. Prints, per server and run: the tool's totals
per command, its `Error:` lines (protocol violations it saw), the CPU the server's processes spent
(user + system; Dovecot's ended imap processes included), and msgstore's RSS after each run (one
msgstore process for all runs: memory must not keep growing); then the summed table

    stress (N clients, R x S s)        msgstore   dovecot   ratio
    logins ...
    server CPU ms per login (session)  ...       (imaptest's sessions are one LOGIN each; the
                                                  steadier figure when the machine's load moves)

`--no-dovecot --rounds 3` stresses msgstore three times back to back (the RSS check).
Run from the repo root: python bench/bench_imaptest_stress.py [--clients 10] [--secs 30]
[--rounds 1] [--no-dovecot] [--profile FILE: py-spy record msgstore during its first run, if
installed; FILE.txt: collapsed stacks, else speedscope JSON]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from _dovecot import start_dovecot

from cpmsync.cpmdata import OWNER, chat_message, random_tel, random_uuid
from cpmsync.msgstore import MessageStore
from tests.support.msgstore_cluster import MsgstoreInstance

RUN = Path(__file__).resolve().parents[2] / "shared/tools/imaptest/run"
USER, PASSWORD = "stress", "stress-pw"
# imaptest's totals block: "Totals:", a line of command names, percentage lines, a line of counts
_TOTALS = re.compile(r"^Totals:\s*\n(?P<names>.*)\n(?:.*%.*\n|\s*\n)*(?P<counts>[\d ]+)$", re.M)
COLUMNS = ("Logi", "List", "Stat", "Sele", "Fetc", "Fet2", "Stor", "Dele", "Expu", "Appe", "Logo")
SHOWN = {"Logi": "logins", "Fetc": "fetches", "Fet2": "fetches (2)", "Stor": "stores", "Appe": "appends"}


@dataclass
class StressResult:
    """What one imaptest stress run printed, and its totals per command column."""

    output: str
    totals: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU (user + system) the server's processes spent during the run


def write_mbox(path: Path, count: int, seed: int = 0) -> None:
    """An mbox of CPM-like chat messages (the store's real shape) for imaptest to APPEND from."""
    rng = random.Random(seed)
    when = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    with path.open("wb") as f:
        for _ in range(count):
            msg = chat_message(rng, random_tel(rng), OWNER, when, random_uuid(rng))
            f.write(b"From MAILER-DAEMON Fri Nov 27 10:00:00 2026\n")
            body = msg.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            f.write(body if body.endswith(b"\n") else body + b"\n")
            f.write(b"\n")


def parse(output: str) -> StressResult:
    res = StressResult(output)
    res.errors = [line for line in output.splitlines() if line.startswith("Error:")]
    found = list(_TOTALS.finditer(output))
    if found:
        m = found[-1]
        names = m["names"].split()
        counts = m["counts"].split()
        res.totals = {n: int(c) for n, c in zip(names, counts, strict=False) if c.isdigit()}
    return res


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a server's processes: the root, its live descendants and
    the children it has reaped (Dovecot's imap processes end at each LOGOUT)."""
    root = psutil.Process(pid)
    t = root.cpu_times()
    total = float(t.user + t.system + t.children_user + t.children_system)
    for p in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            c = p.cpu_times()
            total += c.user + c.system
    return total


def stress(port: int, mbox: Path, clients: int, secs: int, password: str, server_pid: int) -> StressResult:
    cpu0 = server_cpu_s(server_pid)
    out = subprocess.run(
        [str(RUN), "127.0.0.1", str(port), USER, password, "stress", str(mbox), str(clients), str(secs)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=secs + 120,
        check=False,
    )
    res = parse(out.stdout + out.stderr)
    res.cpu_s = server_cpu_s(server_pid) - cpu0
    return res


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _msgstore(tmp: Path) -> MsgstoreInstance:
    db = tmp / "stress.sqlite"
    store = MessageStore(f"sqlite:///{db}", sqlite_synchronous="NORMAL")
    store.add_user(USER, PASSWORD)
    store.close()
    cfg = tmp / "msgstore.toml"
    cfg.write_text('[limits]\nauth_failure_delay_ms = 0\n[store]\nsqlite_synchronous = "NORMAL"\n')
    return MsgstoreInstance(f"sqlite:///{db}", extra_args=["--config", str(cfg)])


def _show(name: str, res: StressResult) -> None:
    cols = "  ".join(f"{c}={res.totals.get(c, 0)}" for c in COLUMNS if c in res.totals)
    print(f"{name}: {cols}; Error: lines {len(res.errors)}; server CPU {res.cpu_s:.1f} s")
    for line in res.errors[:10]:
        print(f"    {line}")
    if not res.totals:
        print(res.output[-3000:])


def _profile(pid: int, secs: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not installed: no profile")
        return None
    fmt = "raw" if out.suffix == ".txt" else "speedscope"  # raw: collapsed stacks, one per line
    # --gil: only the thread holding the GIL, i.e. the Python work that limits one process (worker
    # threads waiting for jobs or for the GIL would otherwise show up as busy)
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(secs), "-o", str(out), "-f", fmt, "--gil", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _total(results: list[StressResult]) -> StressResult:
    out = StressResult("", errors=[e for r in results for e in r.errors], cpu_s=sum(r.cpu_s for r in results))
    for r in results:
        for col, n in r.totals.items():
            out.totals[col] = out.totals.get(col, 0) + n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=1, help="stress runs per server, alternating servers")
    ap.add_argument("--messages", type=int, default=200, help="messages in the mbox imaptest appends from")
    ap.add_argument("--profile", type=Path, help="py-spy output of msgstore's first run")
    ap.add_argument("--no-dovecot", action="store_true", help="msgstore only: its runs back to back")
    a = ap.parse_args()
    if not RUN.exists():
        raise SystemExit(f"imaptest not found at {RUN}")
    print(f"imaptest stress: {a.clients} clients, {a.secs} s per run; the machine is shared (2 cores)")
    ours: list[StressResult] = []
    theirs: list[StressResult] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cpm-stress-") as d, contextlib.ExitStack() as stack:
        tmp = Path(d)
        mbox = tmp / "cpm.mbox"
        write_mbox(mbox, a.messages)
        ms = stack.enter_context(_msgstore(tmp))
        dv = None if a.no_dovecot else start_dovecot(users={USER: PASSWORD})
        if dv is not None:
            stack.callback(dv.close)
            assert dv.pid is not None
            dv_pid = dv.pid
        rss0 = rss_mb(ms.pid)
        for i in range(a.rounds):
            # alternate who goes first, so a change in the machine's load falls on both alike
            order = ["msgstore", "dovecot"] if i % 2 == 0 else ["dovecot", "msgstore"]
            for who in order:
                if who == "dovecot" and dv is not None:
                    theirs.append(stress(dv.port, mbox, a.clients, a.secs, dv.password(USER), dv_pid))
                    _show(f"dovecot  run {i + 1}", theirs[-1])
                elif who == "msgstore":
                    spy = _profile(ms.pid, a.secs, a.profile) if a.profile and i == 0 else None
                    ours.append(stress(ms.port, mbox, a.clients, a.secs, PASSWORD, ms.pid))
                    if spy is not None:
                        spy.wait(60)
                    rss.append(rss_mb(ms.pid))
                    _show(f"msgstore run {i + 1}", ours[-1])
        print(f"msgstore RSS MB: start {rss0:.0f}, after each run " + ", ".join(f"{r:.0f}" for r in rss))
        if len(rss) > 1:
            print(f"RSS after last run / after first: {rss[-1] / rss[0]:.2f}")
    o_all = _total(ours)
    t_all = _total(theirs) if theirs else None
    title = f"stress ({a.clients} clients, {a.rounds} x {a.secs} s)"
    print(f"\n{title:34}{'msgstore':>10}{'dovecot':>10}{'ratio':>8}")
    for col, label in SHOWN.items():
        o = o_all.totals.get(col, 0)
        t = t_all.totals.get(col, 0) if t_all else 0
        ratio = f"{o / t:8.2f}" if t else f"{'-':>8}"
        print(f"{label:34}{o:>10}{t if t_all else '-':>10}{ratio}")
    t_err = len(t_all.errors) if t_all else "-"
    print(f"{'Error: lines':34}{len(o_all.errors):>10}{t_err:>10}")
    # steadier than the counts on a shared machine: what one login's session cost the server
    o_ms = 1000 * o_all.cpu_s / max(1, o_all.totals.get("Logi", 0))
    if t_all:
        t_ms = 1000 * t_all.cpu_s / max(1, t_all.totals.get("Logi", 0))
        print(f"{'server CPU ms per login (session)':34}{o_ms:>10.2f}{t_ms:>10.2f}{o_ms / t_ms:>8.2f}")
    else:
        print(f"{'server CPU ms per login (session)':34}{o_ms:>10.2f}{'-':>10}{'-':>8}")


if __name__ == "__main__":
    main()
