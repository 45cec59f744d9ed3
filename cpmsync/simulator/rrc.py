"""The RRC state machine: cost a timeline of transfers the way AT&T's ARO costs a packet trace.

After each burst the radio walks the profile's phases (LTE: continuous reception, short DRX,
long DRX, idle; 3G: DCH, FACH, idle; ...). A burst that arrives in a phase needing promotion
pays it first; one that arrives inside the tail shares it. A small burst in 3G CELL_FACH below
the RLC buffer threshold is carried in FACH and restarts the FACH timer, not the DCH one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cpmsync.simulator.radio import Phase, RadioProfile, Transfer

__all__ = ["RadioResult", "Segment", "simulate_radio"]

PROMOTION = "promotion"
TRANSFER_UP = "transfer_up"
TRANSFER_DOWN = "transfer_down"


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in one state at one average power."""

    t0_s: float
    t1_s: float
    state: str
    power_mw: float

    @property
    def energy_j(self) -> float:
        return (self.t1_s - self.t0_s) * self.power_mw / 1000


@dataclass(slots=True)
class RadioResult:
    """Totals of one simulated timeline; `segments` only when asked for (plots, tests)."""

    profile: str
    start_s: float
    end_s: float
    energy_j: float = 0.0
    wakes: int = 0
    radio_on_s: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    time_in_state_s: dict[str, float] = field(default_factory=dict)
    energy_in_state_j: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] | None = None

    def _add(self, t0: float, t1: float, state: str, power_mw: float, on: bool) -> None:
        if t1 <= t0:
            return
        d = t1 - t0
        e = d * power_mw / 1000
        self.energy_j += e
        if on:
            self.radio_on_s += d
        self.time_in_state_s[state] = self.time_in_state_s.get(state, 0.0) + d
        self.energy_in_state_j[state] = self.energy_in_state_j.get(state, 0.0) + e
        if self.segments is not None:
            self.segments.append(Segment(t0, t1, state, power_mw))


class _Machine:
    """Walks phases; `anchor_t`/`anchor_i` say when and in which phase the current tail began."""

    def __init__(self, profile: RadioProfile, result: RadioResult, start_s: float) -> None:
        self.p = profile
        self.r = result
        self.phases: tuple[Phase, ...] = profile.phases
        self.anchor_t = start_s
        self.anchor_i = len(self.phases) - 1
        self.busy_until = start_s

    def advance(self, t: float) -> int:
        """Charge the tail from the anchor up to `t`; return the phase index the radio is in at `t`."""
        i, t0 = self.anchor_i, self.anchor_t
        while True:
            ph = self.phases[i]
            end = t if ph.duration_ms is None else min(t, t0 + ph.duration_ms / 1000)
            self.r._add(t0, end, ph.state, ph.average_mw, ph.radio_on)
            if end >= t or ph.duration_ms is None:
                self.anchor_t, self.anchor_i = t0, i
                return i
            t0, i = end, i + 1

    def burst(self, tr: Transfer) -> None:
        t = max(tr.t_s, self.busy_until)
        i = self.advance(t)
        ph = self.phases[i]
        if tr.direction == "up":
            self.r.bytes_up += tr.nbytes
        else:
            self.r.bytes_down += tr.nbytes
        limit = ph.fach_threshold_up_bytes if tr.direction == "up" else ph.fach_threshold_down_bytes
        if limit is not None and tr.nbytes <= limit:
            kbps = (ph.fach_uplink_kbps if tr.direction == "up" else ph.fach_downlink_kbps) or 16.0
            end = t + tr.nbytes * 8 / (kbps * 1000)
            self.r._add(t, end, ph.state, ph.power_mw, True)
            self._restart(end, i)
            return
        if ph.needs_promotion:
            end = t + (ph.promotion_ms or 0.0) / 1000
            self.r._add(t, end, PROMOTION, ph.promotion_mw, True)
            self.r.wakes += 1
            t = end
        tm = self.p.transfer
        end = t + tm.duration_s(tr.direction, tr.nbytes)
        self.r._add(
            t, end, TRANSFER_UP if tr.direction == "up" else TRANSFER_DOWN, tm.power_mw(tr.direction), True
        )
        self._restart(end, 0)

    def _restart(self, t: float, i: int) -> None:
        self.anchor_t, self.anchor_i, self.busy_until = t, i, t


def simulate_radio(
    profile: RadioProfile,
    transfers: Iterable[Transfer],
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    keep_segments: bool = False,
) -> RadioResult:
    """Integrate power over the RRC states a timeline of transfers drives the radio through.

    The radio starts idle at `start_s`; the result runs until `end_s` (default: the end of the
    last tail). Transfers arriving while the radio is busy queue behind it.
    """
    items = sorted(transfers, key=lambda x: x.t_s)
    result = RadioResult(profile.name, start_s, 0.0, segments=[] if keep_segments else None)
    m = _Machine(profile, result, start_s)
    for tr in items:
        if tr.nbytes < 0:
            raise ValueError(f"negative byte count in transfer at t={tr.t_s}")
        if tr.t_s < start_s:
            raise ValueError(f"transfer at t={tr.t_s} s before the start {start_s} s")
        m.burst(tr)
    if end_s is None:
        end_s = (
            m.busy_until
            + profile.tail_s
            + sum(
                (p.duration_ms or 0.0) / 1000 for p in profile.phases if p.needs_promotion and p.duration_ms
            )
        )
    end_s = max(end_s, m.busy_until)
    m.advance(end_s)
    result.end_s = end_s
    return result
