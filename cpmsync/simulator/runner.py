"""Run scenarios across strategies and radios; one row of results per combination."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from cpmsync.simulator.radio import RadioProfile, load_profile
from cpmsync.simulator.rrc import RadioResult, simulate_radio
from cpmsync.simulator.scenario import Scenario, StrategySpec, all_strategy_specs
from cpmsync.simulator.wire import WireConfig
from cpmsync.simulator.workload import DayPlan, plan_day, plan_transfers

__all__ = ["BATTERY_J", "RADIO_CHOICES", "Row", "idle_floor_j", "resolve_radios", "run_scenario"]

BATTERY_MAH = 4000.0
BATTERY_V = 3.85
BATTERY_J = BATTERY_MAH / 1000 * BATTERY_V * 3600  # 55,440 J

RADIO_CHOICES: dict[str, tuple[str, ...]] = {
    "lte": ("lte",),
    "3g": ("3g",),
    "nr": ("nr-nsa",),
    "wifi": ("wifi",),
    "all": ("lte", "lte-aro", "3g", "3g-aro", "nr-nsa", "nr-sa", "wifi"),
}


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario x strategy x radio result, everything per day."""

    scenario: str
    folders: int
    strategy: str
    discovery: str
    compress: bool
    push: bool
    radio: str
    wire_bytes_up_per_day: float
    wire_bytes_down_per_day: float
    imap_bytes_up_per_day: float
    imap_bytes_down_per_day: float
    radio_wakes_per_day: float
    radio_on_s_per_day: float
    energy_j_per_day: float
    sync_energy_j_per_day: float  # above the idle (paging) floor, which is the same for every strategy
    battery_pct_per_day: float
    mean_change_delay_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def resolve_radios(choice: str) -> list[RadioProfile]:
    """`lte|3g|nr|wifi|all`, any shipped profile name, or comma-separated names/paths."""
    names = RADIO_CHOICES.get(choice.lower())
    if names is None:
        names = tuple(x.strip() for x in choice.split(",") if x.strip())
    return [load_profile(n) for n in names]


def idle_floor_j(profile: RadioProfile, duration_s: float) -> float:
    """Energy of a radio that stays idle (paging only) for `duration_s`: every strategy pays it."""
    return profile.idle.average_mw / 1000 * duration_s


def row_for(scn: Scenario, plan: DayPlan, profile: RadioProfile) -> tuple[Row, RadioResult]:
    rp = plan_transfers(plan, profile)
    r = simulate_radio(profile, rp.transfers, end_s=plan.duration_s)
    days = scn.days
    t = plan.totals
    row = Row(
        scenario=scn.name,
        folders=scn.folders,
        strategy=plan.strategy.label,
        discovery=plan.strategy.discovery,
        compress=plan.strategy.compress,
        push=plan.strategy.push,
        radio=profile.name,
        wire_bytes_up_per_day=t.get("wire_up", 0) / days,
        wire_bytes_down_per_day=t.get("wire_down", 0) / days,
        imap_bytes_up_per_day=t.get("imap_up", 0) / days,
        imap_bytes_down_per_day=t.get("imap_down", 0) / days,
        radio_wakes_per_day=r.wakes / days,
        radio_on_s_per_day=r.radio_on_s / days,
        energy_j_per_day=r.energy_j / days,
        sync_energy_j_per_day=(r.energy_j - idle_floor_j(profile, plan.duration_s)) / days,
        battery_pct_per_day=100 * r.energy_j / days / BATTERY_J,
        mean_change_delay_s=rp.mean_delay_s,
    )
    return row, r


def run_scenario(
    scn: Scenario,
    radios: Sequence[RadioProfile],
    specs: Sequence[StrategySpec] | None = None,
    *,
    wire: WireConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[Row]:
    """Plan each strategy's day once (bytes do not depend on the radio), then cost it on each radio."""
    rows: list[Row] = []
    for spec in specs or all_strategy_specs():
        plan = plan_day(scn, spec, wire=wire, progress=progress)
        for profile in radios:
            rows.append(row_for(scn, plan, profile)[0])
    return rows
