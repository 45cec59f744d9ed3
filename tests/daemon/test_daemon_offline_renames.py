"""P0-7: folder renames made while the daemon was down are applied as a permutation.

A swap (A→C, B→A), a 3-cycle and chains arrive as OLDNAME entries of one LIST-CHANGEDSINCE;
applied in listing order they left a ghost folder in the cache and for the apps. After the
restart the cache equals the server and the events alone rebuild the same state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_offline_helpers import offline_settings, outbox_events, sync_once, sync_until_equal
from daemon_sync_helpers import replay_events
from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient import IMAPClient

from cpmsync.daemon.renames import plan_renames
from tests.msgstore.server_testlib import ThreadServer, make_settings, message

USER, PW = "alice", "alice-pw"


def _rename_all(*pairs: tuple[str, str]) -> Callable[[IMAPClient], None]:
    def run(c: IMAPClient) -> None:
        for old, new in pairs:
            c.rename_folder(old, new)

    return run


SCENARIOS = {
    "A->D, B->A (audit repro)": _rename_all(("swapA", "swapD"), ("swapB", "swapA")),
    "3-cycle": _rename_all(("swapA", "tmpX"), ("swapC", "swapA"), ("swapB", "swapC"), ("tmpX", "swapB")),
    "shift B->C, A->B": _rename_all(("swapB", "swapC2"), ("swapA", "swapB")),
    "one folder A->B->C": _rename_all(("swapA", "moved1"), ("moved1", "moved2")),
    "swap A<->B": _rename_all(("swapA", "t"), ("swapB", "swapA"), ("t", "swapB")),
}


def _seed(port: int) -> None:
    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login(USER, PW)
    try:
        # Different message counts per folder: a mix-up or a ghost shows in the comparison.
        for i, name in enumerate(["swapA", "swapB", "swapC"]):
            c.create_folder(name)
            for n in range(i + 1):
                c.append(name, message(10 * i + n), flags=[b"\\Seen"] if n else [])
    finally:
        c.logout()


def _change(port: int, fn: Callable[[IMAPClient], None]) -> None:
    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login(USER, PW)
    try:
        fn(c)
    finally:
        c.logout()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_renames_while_daemon_down_leave_cache_equal_to_server(tmp_path: Path, scenario: str) -> None:
    with ThreadServer(make_settings()) as srv:
        await asyncio.to_thread(_seed, srv.port)
        settings = offline_settings(srv.port, USER, PW, tmp_path)
        first = await sync_once(settings)
        assert {"swapA", "swapB", "swapC"} <= set(first)
        before = len(outbox_events(settings))
        await asyncio.to_thread(_change, srv.port, SCENARIOS[scenario])
        final = await sync_until_equal(settings, srv.port, USER, PW)
        events = outbox_events(settings)
        assert replay_events(events) == final
        # The folders were moved with their messages, not dropped and fetched again.
        assert {e["kind"] for e in events[before:]} <= {"folder_renamed", "folder_removed", "folder_added"}


# The planner on its own: any set of renames that is a valid permutation of cached names (plus
# fresh names) ends with exactly the renamed layout, whatever order the server listed them in.
@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.permutations(list(range(n + 3))),
            st.sets(st.integers(min_value=0, max_value=n - 1)),
            st.randoms(use_true_random=False),
        )
    )
)
def test_plan_renames_is_a_permutation(case: tuple[int, list[int], set[int], object]) -> None:
    n, perm, moved, rnd = case
    names = [f"f{i}" for i in range(n)]
    # Folder f_i (i in moved) is now called f_perm[i]; unmoved folders keep their names unless a
    # moved one took it, in which case the old one is gone on the server.
    targets = {i: perm[i] for i in moved}
    renames = [(f"f{i}", f"f{t}") for i, t in targets.items()]
    rnd.shuffle(renames)  # type: ignore[attr-defined]
    taken = {f"f{t}" for t in targets.values()}
    expected = {f"f{t}": f"f{i}" for i, t in targets.items()}  # new name -> identity
    for i in range(n):
        if i not in moved and f"f{i}" not in taken:
            expected[f"f{i}"] = f"f{i}"
    # Simulate the steps on identities.
    state = {name: name for name in names}
    for step in plan_renames(names, renames):
        if step.op == "delete":
            del state[step.old]
        else:
            assert step.new is not None and step.new not in state  # never onto an occupied name
            state[step.new] = state.pop(step.old)
    assert state == expected
