"""Benchmark: the store's LIST (CHANGEDSINCE) with 3 changed mailboxes among 1,000 / 10,000 / 100,000.

CR Appendix I exists so a client's resync costs what changed, not what exists. This measures the
storage side of that promise: `list_changed_since` reads the (user, highestmodseq) index, so its
time should stay flat as the account grows, while a full LIST-STATUS (`list_mailboxes(...,
with_status=True)`) grows with the account. Accounts are seeded with CPM-like folders through the
bulk loader. Prints one table; run: python bench/bench_store_changedsince.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from cpmsync.msgstore import MessageStore
from cpmsync.msgstore.seed import seed_account

CHANGED = 3
USER = "bench"
MSG = b"From: <tel:+15143457900>\r\nSubject: new\r\nConversation-ID: bench\r\n\r\nhello\r\n"


def _timed_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) in milliseconds over `repeats` calls."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), min(samples)


def _store(url_template: str | None, tmp: Path, n: int) -> MessageStore:
    if url_template is None:
        return MessageStore(f"sqlite:///{tmp / f'bench-{n}.sqlite'}", sqlite_synchronous="NORMAL")
    from sqlalchemy import create_engine, text

    schema = f"cpmsync_bench_{n}"
    admin = create_engine(url_template)
    with admin.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        c.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    sep = "&" if "?" in url_template else "?"
    return MessageStore(f"{url_template}{sep}options=-csearch_path%3D{schema}")


def _drop_schema(url: str, n: int) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url)
    with admin.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS cpmsync_bench_{n} CASCADE"))
    admin.dispose()


def run(sizes: list[int], messages: int, repeats: int, full_repeats: int, pg: str | None) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpm-bench-") as d:
        for n in sizes:
            store = _store(pg, Path(d), n)
            store.add_user(USER, "bench-pw")
            t0 = time.perf_counter()
            seeded = seed_account(store, USER, n, messages, seed=n)
            seed_s = time.perf_counter() - t0
            mark = store.user_highest_modseq(USER)
            for name in random.Random(n).sample(seeded.folders, CHANGED):
                store.append(USER, name, MSG)
            got = store.list_changed_since(USER, mark)
            assert len(got) == CHANGED, f"expected {CHANGED} changed mailboxes, got {len(got)}"
            cs_med, cs_best = _timed_ms(partial(store.list_changed_since, USER, mark), repeats)
            st_med, _ = _timed_ms(partial(store.list_changed_since, USER, mark, with_status=True), repeats)
            full_med, _ = _timed_ms(
                partial(store.list_mailboxes, USER, "", ["*"], with_status=True), full_repeats
            )
            rows.append((n, seed_s, cs_med, cs_best, st_med, full_med))
            store.close()
            if pg is not None:
                _drop_schema(pg, n)
    backend = "PostgreSQL" if pg else "SQLite (WAL)"
    print(
        f"\nLIST (CHANGEDSINCE) in the store, {CHANGED} changed mailboxes, {messages} msg/folder, {backend}"
    )
    print(
        f"{'mailboxes':>10} {'seed s':>8} {'changedsince ms':>16} {'best ms':>8} "
        f"{'+STATUS ms':>11} {'full LIST-STATUS ms':>20} {'full/changed':>13}"
    )
    for n, seed_s, cs_med, cs_best, st_med, full_med in rows:
        print(
            f"{n:>10,} {seed_s:>8.1f} {cs_med:>16.3f} {cs_best:>8.3f} "
            f"{st_med:>11.3f} {full_med:>20.1f} {full_med / st_med:>12.0f}x"
        )
    first, last = rows[0], rows[-1]
    print(
        f"changedsince growth {first[0]:,} -> {last[0]:,} mailboxes: x{last[2] / first[2]:.2f} "
        f"(full LIST-STATUS: x{last[5] / first[5]:.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated mailbox counts")
    ap.add_argument("--messages", type=int, default=1, help="messages per seeded folder")
    ap.add_argument("--repeats", type=int, default=200, help="timed calls of changed_since per size")
    ap.add_argument("--full-repeats", type=int, default=3, help="timed full LIST-STATUS calls per size")
    ap.add_argument("--pg", default=None, help="PostgreSQL URL instead of SQLite (one schema per size)")
    a = ap.parse_args()
    run([int(x) for x in a.sizes.split(",")], a.messages, a.repeats, a.full_repeats, a.pg)


if __name__ == "__main__":
    main()
