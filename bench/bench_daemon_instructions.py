"""The daemon's first sync counted in CPU instructions: this tree against another revision.

Seconds on these shared 2-core machines move by 10 % between runs of the same code, which hides
the 1-5 % a change to the sync path is worth. valgrind counts the instructions a process executes
instead: the same code, account and cache give the same count within ~0.2 % (a pipelined sync's
batches depend a little on timing). Each tree's daemon process (the child of
bench_daemon_vs_mbsync.py: it imports as `cpmsync daemon run` does, connects, runs the first sync
and logs out) syncs one seeded Dovecot account under `valgrind --tool=cachegrind --cache-sim=no`.
The bench prints the instructions of each tree and, for two shapes with the same folder count,
the instructions per extra message, where start-up and per-folder costs cancel out.

`--base` is any git revision; it is checked out in a temporary worktree and removed afterwards.
Its mypyc modules (cpmsync/native.py) are compiled there as an install would, unless `--base-pure`
asks for its source run as Python: `--base HEAD --base-pure` measures what compiling them saves.
This tree runs as installed (`pip install -e .`); the bench prints each tree's build. Each tree
loads its own compiled bytecode (`_bytecode.compiled_bytecode`, then one sync that is not counted
for the modules a sync loads later), as an installed daemon does. Needs valgrind (Debian's
package) and about 30 s per run, plus ~30 s to compile the base.

    python bench/bench_daemon_instructions.py --base main~3 [--base-pure] [--shape 200x5 --shape 200x20]
        [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import compiled_bytecode
from _dovecot import seeded_dovecot

ROOT = Path(__file__).resolve().parents[1]
USER = "alice"
_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


_VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


def instructions(
    tree: Path, env: dict[str, str], port: int, password: str, expect: int, *, counted: bool = True
) -> int:
    """Instructions of one first sync by `tree`'s daemon into a fresh cache (0 when not `counted`:
    a warm-up run, which compiles the bytecode of every module a sync loads)."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as td:
        spec = {"port": port, "password": password, "cache": f"{td}/cache.sqlite", "gc": "service"}
        proc = subprocess.run(
            [
                *(_VALGRIND if counted else []),
                sys.executable,
                str(tree / "bench" / "bench_daemon_vs_mbsync.py"),
                "--child-daemon",
                json.dumps(spec),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    m = _IREFS.search(proc.stderr)
    if proc.returncode != 0 or (counted and m is None):
        raise SystemExit(f"{tree}: the daemon's run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got["messages"] != expect:
        raise SystemExit(f"{tree}: synced {got['messages']} messages, not {expect}")
    return int(m.group(1).replace(",", "")) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="a git revision to compare this tree with")
    ap.add_argument("--shape", action="append", help="FOLDERSxMESSAGES (default 200x5 and 200x20)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--base-pure", action="store_true", help="run the base's source as Python, uncompiled")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    shapes = [tuple(int(x) for x in s.split("x")) for s in (args.shape or ["200x5", "200x20"])]
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run(
        [*git, "rev-parse", "--short", args.base], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cpmsync-instr-") as td:
        tmp = Path(td)
        base = tmp / "base"
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(base), rev], check=True)
        try:
            if not args.base_pure and (base / "setup.py").exists():
                print(f"compiling the base's mypyc modules ({rev}) ...", flush=True)
                subprocess.run(
                    [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                    cwd=base,
                    check=True,
                    capture_output=True,
                )
            trees = {f"base {rev}": base, "this tree": ROOT}
            with ExitStack() as stack:
                # Each tree's cpmsync first on the path, with a bytecode cache of its own.
                envs = {name: dict(os.environ, PYTHONPATH=str(tree)) for name, tree in trees.items()}
                for name, env in envs.items():
                    build, stale = _build(env)
                    print(f"{name}: {build}")
                    if stale:
                        raise SystemExit(f"{name} would run stale compiled modules: pip install -e . first")
                for env in envs.values():
                    stack.enter_context(compiled_bytecode(env))
                counts = _measure(shapes, trees, envs, args.rounds)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
    _marginal(shapes, counts)


def _build(env: dict[str, str]) -> tuple[str, bool]:
    """The tree's build as its daemon loads it (cpmsync.native; older trees had none), and whether
    a compiled module is older than its source."""
    code = (
        "try:\n from cpmsync import native\n"
        "except ImportError: print('[\"codec in pure Python\", false]')\n"
        "else: import json; print(json.dumps([native.summary(), any(b.stale for b in native.builds())]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/"
    ).stdout  # cwd "/": `-c` puts the working directory, this tree, before PYTHONPATH
    summary, stale = json.loads(out)
    return str(summary), bool(stale)


def _measure(
    shapes: list[tuple[int, ...]], trees: dict[str, Path], envs: dict[str, dict[str, str]], rounds: int
) -> dict[tuple[int, ...], dict[str, int]]:
    counts: dict[tuple[int, ...], dict[str, int]] = {}
    for shape in shapes:
        folders, per = shape
        with seeded_dovecot(folders, per) as (dv, seeded):
            pw = dv.password(USER)
            print(f"\n== Dovecot, {folders} folders x {per} messages ({seeded.messages} messages)")
            runs: dict[str, list[int]] = {name: [] for name in trees}
            if shape == shapes[0]:  # every module a sync loads compiled (and Dovecot warm) first
                for name, tree in trees.items():
                    instructions(tree, envs[name], dv.port, pw, seeded.messages, counted=False)
            for _ in range(rounds):
                for name, tree in trees.items():
                    runs[name].append(instructions(tree, envs[name], dv.port, pw, seeded.messages))
            counts[shape] = {name: int(statistics.median(v)) for name, v in runs.items()}
            first = next(iter(counts[shape].values()))
            for name, n in counts[shape].items():
                delta = f" ({n / first - 1:+.1%})" if n != first else ""
                each = " ".join(f"{x / 1e9:.3f}" for x in runs[name])
                print(f"  {name:<14} {n / 1e9:7.3f} G instructions{delta}   runs: {each}")
    return counts


def _marginal(shapes: list[tuple[int, ...]], counts: dict[tuple[int, ...], dict[str, int]]) -> None:
    """Instructions per extra message between two shapes with the same folder count."""
    for a in shapes:
        for b in shapes:
            if a[0] != b[0] or a[1] >= b[1]:
                continue
            extra = a[0] * (b[1] - a[1])
            per = {name: (counts[b][name] - counts[a][name]) / extra for name in counts[a]}
            first = next(iter(per.values()))
            text = ", ".join(
                f"{name} {v / 1e3:.0f} k" + (f" ({v / first - 1:+.1%})" if v != first else "")
                for name, v in per.items()
            )
            print(f"\n== per extra message, {a[0]} folders, {a[0] * a[1]} -> {b[0] * b[1]} messages: {text}")


if __name__ == "__main__":
    main()
