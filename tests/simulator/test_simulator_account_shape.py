"""The simulator models the same account `msgstore seed` and the test-server seeding produce.

One generator (`cpmsync.cpmdata`) behind all three, so a byte prediction for "an account of n
folders, seed s" is about the folders the real server holds for the same n and s.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from cpmsync.cpmdata import folder_message
from cpmsync.msgstore.seed import seed_account
from cpmsync.simulator.account import make_account, make_message
from tests.msgstore.server_testlib import make_store
from tests.support import cpm_folder_names


def test_simulator_msgstore_and_test_seeding_share_folder_names(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    try:
        seeded = seed_account(store, "alice", 300, 0, seed=11)
    finally:
        store.close()
    assert list(make_account(300, seed=11).folders) == seeded.folders == cpm_folder_names(300, seed=11)


def test_every_nested_folder_has_its_parent_before_it() -> None:
    names = list(make_account(2000, seed=3).folders)
    assert names[0] == "Default"
    nested = [n for n in names if "/" in n]
    assert nested, "sub-conversations are part of the shape"
    for i, n in enumerate(names):
        if "/" in n:
            assert n.rsplit("/", 1)[0] in names[:i]


def test_messages_have_one_shape_and_rfc5322_line_lengths() -> None:
    rng = random.Random(5)
    when = datetime(2026, 11, 27, tzinfo=UTC)
    sim = [make_message(rng, "tel:+15145550199", "tel:+15145550100", uid) for uid in range(300)]
    seeded = [folder_message(rng, "tel:+15145550199", when) for _ in range(300)]
    for raw in sim + seeded:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Conversation-ID: " in head and b"Message-Context: pager-message" in head
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        assert body.endswith(b"\r\n")
    # the simulator's new messages have the seeded messages' size distribution
    mean_sim = sum(map(len, sim)) / len(sim)
    mean_seeded = sum(map(len, seeded)) / len(seeded)
    assert abs(mean_sim - mean_seeded) < 0.25 * mean_seeded
