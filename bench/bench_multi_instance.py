"""msgstore as several instances on one PostgreSQL: push latency, memory per idle session, scaling.

    python bench/bench_multi_instance.py [--sessions 1000] [--instances 1 2 3] [--latency-s 20]
                                         [--rate 25] [--targets 100] [--throughput-s 15]
                                         [--writers 6] [--ceiling-s 8] [--json FILE]

For each instance count k it starts k `cpmsync msgstore serve` processes on a fresh schema of the
machine's PostgreSQL (127.0.0.1:5432, database `test`), spreads `--sessions` idle NOTIFY sessions
(one user each, as a phone holds one) over them, and measures:

- memory per idle session: the instances' RSS growth from 10 % to 100 % of the sessions, divided
  by the sessions added (the first 10 % absorb one-time warm-up: pools, caches, argon2 buffers);
- change -> push latency: `--targets` users get a second device on every instance; these APPEND
  to their own INBOX at `--rate` per second in total, round-robin over the instances; latency
  from sending the APPEND to the user's idle session receiving its NOTIFY STATUS, split by whether
  writer and session sit on the same instance (the APPEND round trip is printed next to it: the
  push cannot come before the commit);
- CPU per APPEND at that steady rate (msgstore processes; PostgreSQL: all postgres processes, so
  other load on the machine shows up there): the cost per change without contention, including
  the push to the idle session and every instance reading every notification;
- throughput: `--writers` tasks spread over the instances APPEND flat out for `--throughput-s`,
  each cycling over its share of the target users' connections (so no mailbox grows large);
  APPENDs/s, CPU per APPEND, and PostgreSQL transactions (reads included) and WAL bytes per APPEND
  (whole database) for the fleet arithmetic in docs/scale-out.md;
- the bystander: one more instance that no client uses reads (and drops) every notification;
  its CPU per APPEND is what each instance of a big fleet pays for the changes of users it does
  not serve;
- the commit ceiling (once, `--ceiling-s`): commits/s of writers bumping their own counter row,
  with and without pg_notify in the transaction. PostgreSQL serialises the commits of notifying
  transactions on one cluster-wide lock, so this bounds the change rate of one database.

Every user gets the same password hash (so LOGIN costs argon2 once per instance, not per user):
login cost is not what this measures.

The machine has 2 cores shared with PostgreSQL and this client, so wall-clock throughput stops
growing early; CPU per operation is the figure that carries to bigger machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpmsync.msgstore import MessageStore  # noqa: E402
from cpmsync.msgstore.passwords import hash_password  # noqa: E402
from cpmsync.msgstore.store import users as store_users  # noqa: E402
from tests.support.msgstore_cluster import MsgstoreInstance, PgSchema  # noqa: E402

MSG = b"From: <tel:+15143457900>\r\nSubject: Lunch?\r\n\r\nsee you at noon\r\n"
NOTIFY = b"NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"


class Imap:
    """The least IMAP client that does the job: tagged commands, LITERAL+ APPEND, a line reader."""

    _tags = itertools.count(1)

    def __init__(self, user: str, where: int) -> None:
        self.user = user
        self.where = where  # index of the instance it is connected to
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=2**16)
        await self.reader.readline()
        await self.cmd(f"LOGIN {self.user} pw".encode())

    async def cmd(self, text: bytes, literal: bytes | None = None) -> list[bytes]:
        assert self.reader is not None and self.writer is not None
        tag = b"t%d" % next(self._tags)
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError(f"{self.user}: closed during {text[:20]!r}")
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{self.user}: {text[:40]!r} -> {line!r}")
                return lines

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


@dataclass
class Run:
    instances: int
    sessions: int = 0
    rss_per_session_kib: float = 0.0
    rss_total_mib: float = 0.0
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "cross": []})
    append_rtt_ms: list[float] = field(default_factory=list)
    lost: int = 0
    paced_msgstore_cpu_ms_per_append: float = 0.0
    paced_postgres_cpu_ms_per_append: float = 0.0
    appends_per_s: float = 0.0
    msgstore_cpu_ms_per_append: float = 0.0
    postgres_cpu_ms_per_append: float = 0.0
    commits_per_append: float = 0.0
    wal_bytes_per_append: float = 0.0
    bystander_cpu_us_per_append: float = 0.0


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _rss(insts: list[MsgstoreInstance]) -> int:
    return sum(psutil.Process(i.pid).memory_info().rss for i in insts)


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postgres_cpu() -> float:
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and p.info["name"].startswith("postgres"):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


def _pg_counters(base_url: str) -> tuple[int, int]:
    """(commits in the database so far, WAL position in bytes)."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as c:
        row = c.execute(
            "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _connect_all(sessions: list[Imap], insts: list[MsgstoreInstance], batch: int = 20) -> None:
    for i in range(0, len(sessions), batch):
        group = sessions[i : i + batch]
        await asyncio.gather(*(s.open(insts[s.where].port) for s in group))
        await asyncio.gather(*(s.cmd(NOTIFY) for s in group))


async def _measure(k: int, users: list[str], schema: PgSchema, args: argparse.Namespace) -> Run:
    run = Run(instances=k, sessions=len(users))
    insts = [MsgstoreInstance(schema.url, name=f"bench{k}-{i}") for i in range(k)]
    # One more instance that no client uses: it still reads every notification (and drops them,
    # none of its users being connected), which is what each instance of a big fleet does with
    # nearly all of them.
    bystander = MsgstoreInstance(schema.url, name=f"bench{k}-bystander")
    for inst in [*insts, bystander]:
        inst.start()
    sessions = [Imap(u, n % k) for n, u in enumerate(users)]
    by_user = {s.user: s for s in sessions}
    pending: dict[str, float] = {}
    writer_of: dict[str, int] = {}
    readers: list[asyncio.Task[None]] = []

    drained = asyncio.Event()

    def on_status(user: str, line: bytes, now: float) -> None:
        if not line.startswith(b'* STATUS "INBOX"'):
            return
        t0 = pending.pop(user, None)
        if not pending:
            drained.set()
        if t0 is None:
            return
        same = writer_of.pop(user) == by_user[user].where
        run.latency_ms["same" if same else "cross"].append(1000 * (now - t0))

    async def read_pushes(s: Imap) -> None:
        assert s.reader is not None
        while line := await s.reader.readline():
            on_status(s.user, line, time.perf_counter())

    try:
        first = max(1, len(sessions) // 10)
        await _connect_all(sessions[:first], insts)
        await asyncio.sleep(1.0)
        rss_warm = _rss(insts)
        await _connect_all(sessions[first:], insts)
        await asyncio.sleep(2.0)
        rss_all = _rss(insts)
        run.rss_per_session_kib = (rss_all - rss_warm) / max(1, len(sessions) - first) / 1024
        run.rss_total_mib = rss_all / 2**20
        print(
            f"  {k} instance(s): {len(sessions)} idle NOTIFY sessions, "
            f"{run.rss_per_session_kib:.1f} KiB each, {run.rss_total_mib:.0f} MiB in all",
            flush=True,
        )
        readers = [asyncio.create_task(read_pushes(s)) for s in sessions]

        # -- latency at a steady rate: a second device of each target user, on every instance
        targets = random.sample(users, min(len(users), args.targets))
        wconns = {(where, u): Imap(u, where) for u in targets for where in range(k)}
        conns = list(wconns.values())
        for i in range(0, len(conns), 50):
            await asyncio.gather(*(w.open(insts[w.where].port) for w in conns[i : i + 50]))
        await asyncio.sleep(1.0)
        pids = [i.pid for i in insts]
        paced_cpu0, paced_pg0 = _cpu(pids), _postgres_cpu()
        interval = 1.0 / args.rate
        start = time.perf_counter()
        tasks = []
        for i in range(int(args.latency_s * args.rate)):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            free = [u for u in targets if u not in pending]
            if not free:
                continue
            target = random.choice(free)
            w = wconns[(i % k, target)]
            tasks.append(asyncio.create_task(_timed_append(run, w, target, pending, writer_of)))
        await asyncio.gather(*tasks)
        if pending:
            drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await drained.wait()
        run.lost = len(pending)
        pending.clear()
        n_paced = len(run.append_rtt_ms)
        run.paced_msgstore_cpu_ms_per_append = 1000 * (_cpu(pids) - paced_cpu0) / max(1, n_paced)
        run.paced_postgres_cpu_ms_per_append = 1000 * (_postgres_cpu() - paced_pg0) / max(1, n_paced)

        # -- throughput: writer j on instance j % k, cycling over its share of the target users
        # (many users, so no mailbox grows large and STATUS stays as cheap as in real use)
        shares = [[wconns[(j % k, u)] for u in targets[j :: args.writers]] for j in range(args.writers)]
        cpu0, pg0, by0 = _cpu(pids), _postgres_cpu(), _cpu([bystander.pid])
        commits0, wal0 = _pg_counters(schema.base_url)
        stop_at = time.perf_counter() + args.throughput_s
        done = 0

        async def hammer(share: list[Imap]) -> None:
            nonlocal done
            for w in itertools.cycle(share):
                if time.perf_counter() >= stop_at:
                    return
                await w.cmd(b"APPEND INBOX", MSG)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(hammer(share) for share in shares if share))
        wall = time.perf_counter() - t0
        cpu1, pg1, by1 = _cpu(pids), _postgres_cpu(), _cpu([bystander.pid])
        commits1, wal1 = _pg_counters(schema.base_url)
        for w in conns:
            w.close()
        run.appends_per_s = done / wall
        run.msgstore_cpu_ms_per_append = 1000 * (cpu1 - cpu0) / max(1, done)
        run.postgres_cpu_ms_per_append = 1000 * (pg1 - pg0) / max(1, done)
        run.bystander_cpu_us_per_append = 1e6 * (by1 - by0) / max(1, done)
        run.commits_per_append = (commits1 - commits0) / max(1, done)
        run.wal_bytes_per_append = (wal1 - wal0) / max(1, done)
    finally:
        for r in readers:
            r.cancel()
        for s in sessions:
            s.close()
        for inst in [*insts, bystander]:
            inst.__exit__(None, None, None)
    return run


async def _timed_append(
    run: Run, w: Imap, target: str, pending: dict[str, float], writer_of: dict[str, int]
) -> None:
    """APPEND to `target`'s INBOX over `w` (another device of that user, on instance `w.where`)."""
    writer_of[target] = w.where
    t0 = time.perf_counter()
    pending[target] = t0
    await w.cmd(b"APPEND INBOX", MSG)
    run.append_rtt_ms.append(1000 * (time.perf_counter() - t0))


def _report(runs: list[Run]) -> None:
    print()
    print(
        "| instances | idle sessions | KiB / idle session | push p50 same / cross (ms) "
        "| push p99 same / cross (ms) | APPEND rtt p50 (ms) | lost "
        "| CPU ms / APPEND paced: msgstore, PostgreSQL | APPENDs/s flat out "
        "| CPU ms / APPEND flat out: msgstore, PostgreSQL | transactions / APPEND | WAL bytes / APPEND "
        "| bystander CPU µs / APPEND |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        same, cross = r.latency_ms["same"], r.latency_ms["cross"]
        print(
            f"| {r.instances} | {r.sessions:,} | {r.rss_per_session_kib:.1f} "
            f"| {_pct(same, 50):.1f} / {_pct(cross, 50):.1f} | {_pct(same, 99):.1f} / {_pct(cross, 99):.1f} "
            f"| {_pct(r.append_rtt_ms, 50):.1f} | {r.lost} "
            f"| {r.paced_msgstore_cpu_ms_per_append:.2f}, {r.paced_postgres_cpu_ms_per_append:.2f} "
            f"| {r.appends_per_s:.0f} "
            f"| {r.msgstore_cpu_ms_per_append:.2f}, {r.postgres_cpu_ms_per_append:.2f} "
            f"| {r.commits_per_append:.2f} | {r.wal_bytes_per_append:,.0f} "
            f"| {r.bystander_cpu_us_per_append:.0f} |"
        )
    print()
    for r in runs:
        print(
            f"{r.instances} instance(s): push samples same {len(r.latency_ms['same'])}, "
            f"cross {len(r.latency_ms['cross'])}"
        )


async def _main(args: argparse.Namespace) -> list[Run]:
    os.environ["CPMSYNC_LIMITS__MAX_CONNECTIONS_PER_ADDRESS"] = str(args.sessions * 2 + 100)
    os.environ.setdefault("CPMSYNC_LOG_LEVEL", "warning")
    runs = []
    with PgSchema.fresh(prefix="cpm_bench") as schema:
        users = [f"dev{i:05d}" for i in range(args.sessions)]
        t0 = time.perf_counter()
        # Every user gets the same argon2 hash of "pw": an instance then verifies it once and
        # takes later LOGINs from its verified-password cache, so argon2 (what a LOGIN costs, not
        # what this bench measures) neither dominates the set-up nor loads the CPU during it.
        one_hash = hash_password("pw")
        with (
            MessageStore(schema.url) as store,
            mock.patch.object(store_users, "hash_password", lambda _p: one_hash),
        ):
            for u in users:
                store.add_user(u, "pw")
        print(f"{len(users)} users added in {time.perf_counter() - t0:.0f} s", flush=True)
        for k in args.instances:
            runs.append(await _measure(k, users, schema, args))
        if args.ceiling_s > 0:
            ceiling = _pg_commit_ceiling(schema, args.ceiling_s, args.ceiling_threads)
            print()
            print(f"PostgreSQL commit ceiling, {args.ceiling_threads} writers on their own rows:")
            for mode, rate in ceiling.items():
                print(f"  {mode}: {rate:,.0f} commits/s")
    return runs


def _pg_commit_ceiling(schema: PgSchema, seconds: float, threads: int) -> dict[str, float]:
    """Commits/s of `threads` writers each bumping its own counter row (a user's MODSEQ), with and
    without a pg_notify in the transaction: PostgreSQL serialises the commits of notifying
    transactions on one database-wide lock, so this is the ceiling of change transactions one
    database takes with cross-instance push, whatever the msgstore instances do."""
    import threading

    import psycopg

    def conn() -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(schema.url.replace("postgresql+psycopg://", "postgresql://"))

    with conn() as c:
        c.execute("CREATE TABLE bench_ceiling (id int PRIMARY KEY, n bigint NOT NULL)")
        c.execute("INSERT INTO bench_ceiling SELECT g, 0 FROM generate_series(0, %s) g", (threads,))
        c.commit()
    payload = "dev00042 0123456789 17 " + json.dumps([["append", 1, 42, "INBOX", None, [[1, 3]]]])
    out: dict[str, float] = {}
    with conn() as listener:
        listener.autocommit = True
        listener.execute("LISTEN bench_ceiling")
        for mode in ("without NOTIFY", "with NOTIFY"):
            counts = [0] * threads
            stop = threading.Event()

            def work(i: int, notify: bool, stop: threading.Event, counts: list[int]) -> None:
                with conn() as c:
                    while not stop.is_set():
                        c.execute("UPDATE bench_ceiling SET n = n + 1 WHERE id = %s", (i,))
                        if notify:
                            c.execute("SELECT pg_notify('bench_ceiling', %s)", (payload,))
                        c.commit()
                        counts[i] += 1

            ts = [
                threading.Thread(target=work, args=(i, mode == "with NOTIFY", stop, counts))
                for i in range(threads)
            ]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in ts:
                t.join()
            out[mode] = sum(counts) / (time.perf_counter() - t0)
            for _ in listener.notifies(timeout=0.5):
                pass  # drain what the listener was sent
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--latency-s", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=25.0, help="APPENDs per second in the latency phase")
    ap.add_argument("--targets", type=int, default=100, help="users written to in the latency phase")
    ap.add_argument("--throughput-s", type=float, default=15.0)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--ceiling-s", type=float, default=8.0, help="0 skips the commit ceiling phase")
    ap.add_argument("--ceiling-threads", type=int, default=16)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = asyncio.run(_main(args))
    _report(runs)
    if args.json:
        args.json.write_text(json.dumps([vars(r) for r in runs], indent=1))


if __name__ == "__main__":
    main()
