"""The daemon's wake schedule, as pure values: what it does on its own clock, and when.

On a radio, energy follows the number of wakes (an LTE wake costs ~12.8 J of tail whatever it
carries), so this module is the daemon's energy budget. It has no I/O and no clock of its own:
the daemon's push loop (push.py) runs it against the real connection, and the simulator
(`cpmsync simulate schedule`, simulator/workload.py) prices exactly the same decisions over a day.

- `HeartbeatLadder`: the longest idle interval the path survives (carrier NATs drop idle TCP
  mappings after 5-15 minutes, silently), learned by probing: start safely below 5 minutes, step up
  while the connection survives, step back on a loss, re-probe rarely. Its state is kept per
  network (the cache stores it) so a phone moving between networks does not relearn each time.
- `WakeSchedule`: own-clock work (heartbeat/re-IDLE, names check, optional discovery poll) is
  aligned onto as few wakes as possible: a task never wakes the radio on its own if a heartbeat
  falls before it would, and everything due before the next planned wake rides on a wake that
  happens anyway (a change the server pushed, a heartbeat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "HeartbeatLadder",
    "HeartbeatSettings",
    "HeartbeatState",
    "Task",
    "WakeSchedule",
]

IDLE_MAX_S = 29 * 60  # RFC 2177 3: re-issue IDLE at least every 29 minutes
_EPS_S = 1e-3  # timers fire this close to their deadline
RESOLUTION_STEPS = 6  # probing stops once a survived and a lost interval are step_s / 6 close


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    """The ladder's rungs and pace; `adaptive=False` keeps a fixed `initial_s`."""

    adaptive: bool = True
    initial_s: float = 240.0  # below the shortest common carrier NAT timeout (5 min)
    min_s: float = 60.0
    max_s: float = 28 * 60.0  # under RFC 2177's 29-minute IDLE limit
    step_s: float = 180.0
    reprobe_after_s: float = 86400.0  # after a loss, try one step above again this much later
    reply_timeout_s: float = 10.0  # a heartbeat not answered this fast means a dead connection

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.initial_s <= self.max_s:
            raise ValueError("heartbeat: need 0 < min_s <= initial_s <= max_s")
        if self.step_s <= 0 or self.reply_timeout_s <= 0:
            raise ValueError("heartbeat: step_s and reply_timeout_s must be positive")


@dataclass(slots=True)
class HeartbeatState:
    """What has been learned on one network (persisted per network id)."""

    good_s: float  # the longest idle interval seen to survive
    bad_s: float | None = None  # the shortest idle interval seen to kill the connection
    probe_s: float = 0.0  # the interval tried next
    since_s: float = 0.0  # when good_s was last confirmed by a loss above it (for re-probing)


@dataclass(slots=True)
class HeartbeatLadder:
    """Probe ladder over idle intervals; `interval()` is the next heartbeat's idle interval.

    Only idle intervals that ended in a heartbeat count as evidence: a change pushed by the server
    also refreshes the NAT mapping, so the time since the last traffic is what is being measured.
    """

    settings: HeartbeatSettings
    state: HeartbeatState = field(init=False)

    def __post_init__(self) -> None:
        self.state = HeartbeatState(good_s=0.0, probe_s=self.settings.initial_s)

    @classmethod
    def restore(cls, settings: HeartbeatSettings, state: HeartbeatState | None) -> HeartbeatLadder:
        ladder = cls(settings)
        if state is not None and settings.adaptive:
            probe = min(max(state.probe_s or settings.initial_s, settings.min_s), settings.max_s)
            ladder.state = HeartbeatState(state.good_s, state.bad_s, probe, state.since_s)
        return ladder

    def _clamp(self, x: float) -> float:
        return min(self.settings.max_s, max(self.settings.min_s, x))

    def interval(self, now: float = 0.0) -> float:
        s, st = self.settings, self.state
        if not s.adaptive:
            return s.initial_s
        if st.bad_s is not None and now - st.since_s >= s.reprobe_after_s:
            # NAT policies change (another cell, another carrier setting): try one step above again.
            return self._clamp(max(st.good_s, s.min_s) + s.step_s)
        return st.probe_s

    def survived(self, idle_s: float, now: float = 0.0) -> None:
        """A heartbeat after `idle_s` of silence was answered: the path holds that long."""
        s, st = self.settings, self.state
        if not s.adaptive:
            return
        st.good_s = max(st.good_s, idle_s)
        if st.bad_s is not None and st.good_s >= st.bad_s:
            st.bad_s = None  # the old loss was not the NAT, or the NAT changed
        if st.bad_s is None:
            st.probe_s = self._clamp(st.good_s + s.step_s)
            return
        if now - st.since_s >= s.reprobe_after_s:
            st.since_s = now  # a re-probe just survived; the next one in reprobe_after_s
        # Between a survived and a lost interval: halve the gap until it is within the resolution.
        st.probe_s = self._between()

    def lost(self, idle_s: float, now: float = 0.0) -> None:
        """The connection was found dead at a heartbeat after `idle_s` of silence: step back."""
        s, st = self.settings, self.state
        if not s.adaptive:
            return
        st.bad_s = idle_s if st.bad_s is None else min(st.bad_s, idle_s)
        if st.good_s >= st.bad_s:
            st.good_s = 0.0  # what seemed to survive does not: relearn below the loss
        st.since_s = now
        if st.good_s > 0:
            st.probe_s = self._between()
        else:
            st.probe_s = self._clamp(st.bad_s / 2)

    @property
    def resolution_s(self) -> float:
        """How close to a loss probing goes (relative to the step, so time-scaled settings behave alike)."""
        return self.settings.step_s / RESOLUTION_STEPS

    def _between(self) -> float:
        st = self.state
        assert st.bad_s is not None
        gap = st.bad_s - st.good_s
        return self._clamp(st.good_s + gap / 2 if gap > 2 * self.resolution_s else st.good_s)

    @property
    def learned_s(self) -> float:
        """The interval the daemon settles on once probing is done."""
        return self.state.good_s


class Task(StrEnum):
    """Work the daemon does on its own clock."""

    HEARTBEAT = "heartbeat"  # DONE + IDLE (or NOOP when polling): keeps the NAT mapping, finds a dead link
    NAMES = "names"  # names-only LIST: folders deleted or renamed that no push told of
    POLL = "poll"  # discovery catch-up (where push is absent or cannot be trusted; with heartbeats)


@dataclass(slots=True)
class WakeSchedule:
    """When the daemon wakes on its own and what it does then; all times on one monotonic clock.

    `heartbeat_s` comes from the ladder; `poll_s` is inf when no poll runs (NOTIFY). The heartbeat
    counts from the last traffic either way, so a day with changes needs fewer heartbeats.
    """

    heartbeat_s: float
    names_s: float
    poll_s: float = math.inf
    last_traffic: float = 0.0
    names_due: float = math.inf
    poll_due: float = math.inf
    # A discovery check rides on every heartbeat (a wake made anyway): push that went silent
    # loses nothing for longer than one heartbeat, at no wake of its own.
    poll_on_heartbeat: bool = False

    @classmethod
    def start(
        cls,
        now: float,
        *,
        heartbeat_s: float,
        names_s: float,
        poll_s: float = math.inf,
        poll_on_heartbeat: bool = False,
    ) -> WakeSchedule:
        return cls(
            heartbeat_s=min(heartbeat_s, IDLE_MAX_S),
            names_s=names_s,
            poll_s=poll_s,
            last_traffic=now,
            names_due=now + names_s,
            poll_due=now + poll_s,
            poll_on_heartbeat=poll_on_heartbeat,
        )

    def traffic(self, now: float) -> None:
        """Bytes went over the connection (either way): the NAT mapping is fresh again."""
        self.last_traffic = max(self.last_traffic, now)

    def next_wake(self) -> float:
        """The next own-clock wake: the heartbeat, or a poll due before it."""
        return min(self.last_traffic + self.heartbeat_s, self.poll_due)

    def due(self, now: float, *, woke_anyway: bool = False) -> list[Task]:
        """Tasks to do at `now`. Names checks and polls never wake the radio for themselves when a
        heartbeat comes first: they ride on the first wake at or after their due time, whatever
        caused it. On a wake caused by something else (`woke_anyway`: a push, an app's action)
        no heartbeat is needed, the wake's own traffic refreshes the mapping."""
        tasks: list[Task] = []
        if not woke_anyway and now + _EPS_S >= self.last_traffic + self.heartbeat_s:
            tasks.append(Task.HEARTBEAT)
        if self.poll_due <= now + _EPS_S or (self.poll_on_heartbeat and Task.HEARTBEAT in tasks):
            tasks.append(Task.POLL)
        if self.names_due <= now + _EPS_S:
            tasks.append(Task.NAMES)
        return tasks

    def done(self, task: Task, now: float) -> None:
        if task is Task.NAMES:
            self.names_due = now + self.names_s
        elif task is Task.POLL:
            self.poll_due = now + self.poll_s
        self.traffic(now)

    def heartbeat_done(self, now: float) -> None:
        """A heartbeat went out and was answered: what rides on it is due now (see `due`)."""
        self.traffic(now)
        if self.poll_on_heartbeat:
            self.poll_due = min(self.poll_due, now)

    def set_heartbeat(self, heartbeat_s: float) -> None:
        self.heartbeat_s = min(heartbeat_s, IDLE_MAX_S)
