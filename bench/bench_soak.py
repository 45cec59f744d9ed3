"""The long differential soak and the convergence benchmark (tests/support/soak/ does the work).

    python bench/bench_soak.py soak [--minutes 10] [--peer msgstore|dovecot|msgstore-2|both|all]
                                    [--fault none|sigkill|broker|cut|all] [--seed N]
    python bench/bench_soak.py bursts [--bursts 20] [--size 40] [--peer both]

`msgstore-2` is two msgstore instances on the machine's PostgreSQL, the daemon on one and the
change stream on the other (cross-instance push); `both` is msgstore and Dovecot, `all` the three.

`soak`: a change stream of --minutes per peer and fault mode at 20 changes/s over 300 folders
(APPEND, flag changes, EXPUNGE, MOVE, CREATE, RENAME, DELETE, DELETE + CREATE of the same name);
prints changes made, faults hit, the time from the last change until the MQTT view (retained
summaries and replayed events) equals the server, and the mismatches, each with the seed that
reproduces it (`CPMSYNC_SOAK_SEED`).

`bursts`: the daemon with NOTIFY and no fault; bursts of --size changes at 17/s, then the time
from each burst's last change until the MQTT view equals the server; p50 / p99 per peer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.soak import ALL_PEERS, FAULTS, PEERS, percentile, run_bursts, run_soak


def _peers(choice: str) -> list[str]:
    return list(PEERS) if choice == "both" else list(ALL_PEERS) if choice == "all" else [choice]


async def soak(args: argparse.Namespace) -> int:
    peers = _peers(args.peer)
    faults = list(FAULTS) if args.fault == "all" else [args.fault]
    head = f"{'peer':9} {'fault':8} {'seed':>11} {'changes':>8} {'faults':>6} {'events':>7}"
    print(f"{head} {'converged s':>12} mismatches")
    failed = 0
    for p in peers:
        for f in faults:
            r = await run_soak(p, f, seconds=args.minutes * 60, seed=args.seed)
            conv = f"{r.convergence_s:.2f}" if r.convergence_s is not None else "never"
            print(
                f"{p:9} {f:8} {r.seed:>11} {r.changes:>8} {len(r.faults):>6} {r.events:>7} {conv:>12} "
                f"{len(r.problems)}",
                flush=True,
            )
            if not r.ok:  # at once: a long run should not hide its first failure for an hour
                failed += 1
                print(r.report(limit=20) + "\n", flush=True)
    return 1 if failed else 0


async def bursts(args: argparse.Namespace) -> int:
    peers = _peers(args.peer)
    print(f"{'peer':9} {'bursts':>6} {'size':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7} never  final verdict")
    bad = 0
    for p in peers:
        out = await run_bursts(p, bursts=args.bursts, size=args.size, seed=args.seed)
        done = [t for t in out.times if t is not None]
        never = len(out.times) - len(done)
        p50 = f"{percentile(done, 50):.2f}" if done else "-"
        p99 = f"{percentile(done, 99):.2f}" if done else "-"
        mx = f"{max(done):.2f}" if done else "-"
        verdict = "ok" if out.soak is not None and out.soak.ok else "MISMATCH"
        row = f"{p:9} {len(out.times):>6} {out.size:>5} {p50:>7} {p99:>7} {mx:>7} {never:>5}"
        print(f"{row}  {verdict}", flush=True)
        if out.soak is not None and not out.soak.ok:
            bad += 1
            print(out.soak.report(limit=20))
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--peer", choices=[*ALL_PEERS, "both", "all"], default="both")
    s.add_argument("--fault", choices=[*FAULTS, "all"], default="all")
    s.add_argument("--seed", type=int, default=None)
    b = sub.add_parser("bursts")
    b.add_argument("--bursts", type=int, default=20)
    b.add_argument("--size", type=int, default=40)
    b.add_argument("--peer", choices=[*ALL_PEERS, "both", "all"], default="both")
    b.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    sys.exit(asyncio.run(soak(args) if args.cmd == "soak" else bursts(args)))


if __name__ == "__main__":
    main()
