"""Dovecot for benchmarks: `from _dovecot import seeded_dovecot` in bench/<name>.py.

Benches run as `python bench/<name>.py` from the repo root, so bench/ is on sys.path and this
module imports as `_dovecot`. The launcher itself lives in `tests.support` (shared with the tests
and the demo); this module only adds what a bench wants: one call that starts a private Dovecot,
seeds it with the same CPM-like data the msgstore seed produces, and reports how long that took.

    from _dovecot import seeded_dovecot
    with seeded_dovecot(folders=10_000, messages_per_folder=1) as (dv, seeded):
        imaplib.IMAP4(dv.host, dv.port).login("alice", dv.password("alice"))
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from tests.support import (
    DEFAULT_USERS,
    DovecotMissingError,
    DovecotServer,
    SeedResult,
    cpm_folder_names,
    seed_dovecot,
    seed_imap,
)

__all__ = [
    "DEFAULT_USERS",
    "DovecotServer",
    "SeedResult",
    "cpm_folder_names",
    "seed_dovecot",
    "seed_imap",
    "seeded_dovecot",
    "start_dovecot",
]


def start_dovecot(**kwargs: Any) -> DovecotServer:
    """A started private Dovecot; exits the bench with one clear line if dovecot-imapd is missing."""
    try:
        return DovecotServer(**kwargs).start()
    except DovecotMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def seeded_dovecot(
    folders: int,
    messages_per_folder: int = 0,
    *,
    user: str = "alice",
    seed: int = 0,
    quiet: bool = False,
    **server_kwargs: Any,
) -> Iterator[tuple[DovecotServer, SeedResult]]:
    """Start Dovecot, seed `user` (list index warmed), yield (server, seed result), stop it."""
    server = start_dovecot(**server_kwargs)
    try:
        result = seed_dovecot(server, user, folders, messages_per_folder, seed=seed)
        if not quiet:
            print(
                f"dovecot seeded: {len(result.folders)} folders, {result.messages} messages "
                f"(create {result.create_s:.1f} s, append {result.append_s:.1f} s, "
                f"index warm-up {result.warm_s:.1f} s)"
            )
        yield server, result
    finally:
        server.close()


if __name__ == "__main__":
    # Smoke run: how fast does a 10,000-folder account seed here?
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with seeded_dovecot(n, m) as (dv, res):
        print(f"total {res.total_s:.1f} s for {n} folders × {m} messages on {dv.host}:{dv.port}")
