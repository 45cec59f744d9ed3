"""The wake schedule (daemon/schedule.py): the heartbeat ladder learns what the path allows, and
own-clock work never costs a wake of its own when a heartbeat or a push comes first."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpmsync.daemon.schedule import (
    HeartbeatLadder,
    HeartbeatSettings,
    HeartbeatState,
    Task,
    WakeSchedule,
)

SETTINGS = HeartbeatSettings()
RESOLUTION_S = HeartbeatLadder(SETTINGS).resolution_s


def run_ladder(
    nat_timeout_s: float, heartbeats: int, settings: HeartbeatSettings = SETTINGS
) -> tuple[HeartbeatLadder, list[float], int]:
    """Heartbeats through a NAT that drops mappings idle for nat_timeout_s or longer."""
    ladder = HeartbeatLadder(settings)
    now, tried, losses = 0.0, [], 0
    for _ in range(heartbeats):
        iv = ladder.interval(now)
        now += iv
        tried.append(iv)
        if iv >= nat_timeout_s:
            ladder.lost(iv, now)
            losses += 1
        else:
            ladder.survived(iv, now)
    return ladder, tried, losses


@given(st.floats(min_value=SETTINGS.min_s + 2 * RESOLUTION_S, max_value=SETTINGS.max_s))
def test_ladder_settles_just_below_the_nat_timeout(nat_timeout_s: float) -> None:
    _ladder, tried, losses = run_ladder(nat_timeout_s, 40)
    settled = tried[-10:]
    assert all(iv < nat_timeout_s for iv in settled)  # no loss once learned
    assert min(settled) >= nat_timeout_s - 2 * RESOLUTION_S - 1e-6  # close to what the path allows
    assert losses <= 8  # a handful of probes, not a loss every few heartbeats


@given(st.floats(min_value=SETTINGS.max_s + 1, max_value=10 * 3600))
def test_ladder_climbs_to_the_top_when_nothing_drops(nat_timeout_s: float) -> None:
    _ladder, tried, losses = run_ladder(nat_timeout_s, 20)
    assert losses == 0
    assert tried[-1] == SETTINGS.max_s


@given(st.lists(st.tuples(st.booleans(), st.floats(min_value=1, max_value=4000)), max_size=60))
def test_ladder_interval_always_within_bounds(steps: list[tuple[bool, float]]) -> None:
    ladder = HeartbeatLadder(SETTINGS)
    now = 0.0
    for alive, idle in steps:
        now += idle
        (ladder.survived if alive else ladder.lost)(idle, now)
        assert SETTINGS.min_s <= ladder.interval(now) <= SETTINGS.max_s


def test_ladder_reprobes_rarely_after_a_loss() -> None:
    ladder, _tried, _losses = run_ladder(600, 30)  # learned: just under 10 minutes
    learned = ladder.learned_s
    hours = SETTINGS.reprobe_after_s
    assert ladder.interval(ladder.state.since_s + hours / 2) == ladder.state.probe_s
    assert ladder.interval(ladder.state.since_s + hours) > learned  # once in a while, one step above


def test_fixed_heartbeat_never_moves() -> None:
    s = HeartbeatSettings(adaptive=False, initial_s=300)
    _ladder, tried, losses = run_ladder(200, 10, s)
    assert set(tried) == {300} and losses == 10


def test_restore_keeps_what_a_network_taught() -> None:
    state = HeartbeatState(good_s=570, bad_s=600, probe_s=570, since_s=100)
    ladder = HeartbeatLadder.restore(SETTINGS, state)
    assert ladder.interval(200) == 570


def test_names_check_rides_on_wakes_and_never_wakes_alone() -> None:
    sched = WakeSchedule.start(0.0, heartbeat_s=600, names_s=100)
    assert sched.next_wake() == 600  # the names check (due at 100) does not move the wake
    assert sched.due(50, woke_anyway=True) == []
    assert sched.due(150, woke_anyway=True) == [Task.NAMES]  # a push at 150 carries it
    sched.done(Task.NAMES, 150)
    assert sched.next_wake() == 750  # and that wake's traffic pushed the heartbeat back


def test_heartbeat_counts_from_the_last_traffic() -> None:
    sched = WakeSchedule.start(0.0, heartbeat_s=600, names_s=3600)
    sched.traffic(500)  # a change was synced at 500
    assert sched.due(600) == []
    assert sched.next_wake() == 1100
    assert sched.due(1100) == [Task.HEARTBEAT]


def test_poll_wakes_on_its_own_only_when_shorter_than_the_heartbeat() -> None:
    assert WakeSchedule.start(0, heartbeat_s=600, names_s=3600, poll_s=300).next_wake() == 300
    assert WakeSchedule.start(0, heartbeat_s=600, names_s=3600, poll_s=900).next_wake() == 600
    assert WakeSchedule.start(0, heartbeat_s=600, names_s=3600).poll_due == math.inf


def test_settings_reject_inverted_bounds() -> None:
    with pytest.raises(ValueError):
        HeartbeatSettings(min_s=300, initial_s=200)


def test_check_on_heartbeat_rides_on_the_heartbeat_and_never_wakes_alone() -> None:
    sched = WakeSchedule.start(0.0, heartbeat_s=600, names_s=math.inf, poll_on_heartbeat=True)
    assert sched.next_wake() == 600  # no wake of its own
    assert sched.due(300, woke_anyway=True) == []  # a push wake carries no check
    assert sched.due(600) == [Task.HEARTBEAT, Task.POLL]
    sched.heartbeat_done(600)  # the IDLE DONE/OK heartbeat went out: the check follows on that wake
    assert sched.due(600, woke_anyway=True) == [Task.POLL]
    sched.done(Task.POLL, 601)
    assert sched.due(601, woke_anyway=True) == []
    assert sched.next_wake() == 1201
    plain = WakeSchedule.start(0.0, heartbeat_s=600, names_s=math.inf)
    plain.heartbeat_done(600)
    assert plain.due(600, woke_anyway=True) == []
