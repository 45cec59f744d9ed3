"""Strategies are compared on one timeline: fewer bytes in every exchange never cost more energy.

Audit P2-8: docs/energy.md showed LIST-CHANGEDSINCE dearer than LIST-STATUS because its daily
deletion scan was a wake of its own and shifted the random stream the message bodies came from.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.radio import builtin_profile_names, load_profile
from cpmsync.simulator.rrc import simulate_radio
from cpmsync.simulator.runner import run_scenario
from cpmsync.simulator.scenario import Arrivals, Scenario, StrategySpec, load_scenario
from cpmsync.simulator.workload import Action, DayPlan, plan_day, plan_transfers

PROFILES = {n: load_profile(n) for n in builtin_profile_names()}
ORDER = (
    DiscoveryStrategy.LIST_CHANGEDSINCE,
    DiscoveryStrategy.LIST_STATUS,
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER,
)  # fewest bytes first


def _settle_s(name: str) -> float:
    """Time from the last packet until the radio is in its final idle state."""
    return sum((p.duration_ms or 0.0) / 1000 for p in PROFILES[name].phases)


@pytest.mark.parametrize("push", [False, True], ids=["poll", "push"])
def test_strategies_share_one_timeline_and_fewer_bytes_never_cost_more(push: bool) -> None:
    scn = load_scenario("light").model_copy(
        update={"folders": 1000, "arrivals": Arrivals(messages_per_day=40, folders_deleted_per_day=2)}
    )
    specs = [StrategySpec(d, False, push) for d in ORDER]
    plans = [plan_day(scn, s) for s in specs]
    # the same day: every strategy acts at the same moments on the same changes
    times = [[a.t_s for a in p.actions] for p in plans]
    assert times[0] == times[1] == times[2]
    radios = [PROFILES[n] for n in ("lte", "nr-nsa", "3g", "wifi")]
    rows = run_scenario(scn, radios, specs)
    for radio in radios:
        cs, ls, each = (next(r for r in rows if r.radio == radio.name and r.discovery == d) for d in ORDER)
        assert cs.radio_wakes_per_day == ls.radio_wakes_per_day == each.radio_wakes_per_day, radio.name
        assert cs.energy_j_per_day <= ls.energy_j_per_day <= each.energy_j_per_day, radio.name
        # the idle floor is the same for everyone, so the sync energy keeps the same order
        assert 0 < cs.sync_energy_j_per_day <= ls.sync_energy_j_per_day, radio.name
        floor = cs.energy_j_per_day - cs.sync_energy_j_per_day
        assert floor == pytest.approx(ls.energy_j_per_day - ls.sync_energy_j_per_day)
        assert floor == pytest.approx(radio.idle.average_mw / 1000 * 86400)


def test_the_deletion_scan_rides_on_a_poll_and_wakes_nothing_extra() -> None:
    scn = Scenario(name="del", folders=300, arrivals=Arrivals(messages_per_day=50, folders_deleted_per_day=3))
    cs = plan_day(scn, StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, False))
    ls = plan_day(scn, StrategySpec(DiscoveryStrategy.LIST_STATUS, False, False))
    assert len(cs.actions) == len(ls.actions)
    lte = PROFILES["lte"]
    w_cs = simulate_radio(lte, plan_transfers(cs, lte).transfers, end_s=86400).wakes
    w_ls = simulate_radio(lte, plan_transfers(ls, lte).transfers, end_s=86400).wakes
    assert w_cs == w_ls


_flight = st.tuples(st.sampled_from(["up", "down"]), st.integers(40, 60_000), st.integers(0, 60_000))
_action = st.tuples(st.booleans(), st.floats(0.0, 1.0), st.lists(_flight, min_size=1, max_size=4))


@settings(max_examples=60, deadline=None)
@given(radio=st.sampled_from(sorted(PROFILES)), actions=st.lists(_action, min_size=1, max_size=12))
def test_fewer_bytes_in_every_flight_never_cost_more_energy_or_wakes(
    radio: str, actions: list[tuple[bool, float, list[tuple[str, int, int]]]]
) -> None:
    """Same timeline, every flight of A no bigger than B's: A never costs more.

    Exchanges are either inside each other's tail or far apart (both radios idle between): in
    the band between, a shorter exchange can let the tail run out just before the next one and
    pay a promotion the longer one avoids, a real RRC effect rather than a modelling artefact.
    """
    profile = PROFILES[radio]
    spec = StrategySpec(DiscoveryStrategy.LIST_STATUS, False, False)
    a = DayPlan("p", spec, 0.0)
    b = DayPlan("p", spec, 0.0)
    t = 1.0
    for far, frac, flights in actions:
        a.actions.append(Action(t, "x", [(d, n) for d, n, _ in flights]))
        b.actions.append(Action(t, "x", [(d, n + extra) for d, n, extra in flights]))
        t += _settle_s(radio) + 120.0 + frac if far else frac * 0.9 * profile.tail_s
    end = t + _settle_s(radio) + 120.0
    ra = simulate_radio(profile, plan_transfers(a, profile).transfers, end_s=end)
    rb = simulate_radio(profile, plan_transfers(b, profile).transfers, end_s=end)
    assert ra.wakes <= rb.wakes
    assert ra.energy_j <= rb.energy_j + 1e-9


def test_the_report_shows_sync_energy_above_idle_next_to_the_total() -> None:
    """The report's tables carry the undiluted column (without running the 15-minute report)."""
    from cpmsync.simulator.report import ORDER as REPORT_ORDER
    from cpmsync.simulator.report import _markdown

    light = load_scenario("light")
    specs = [
        StrategySpec(d, c, p) for d in REPORT_ORDER for c, p in ((False, False), (True, False), (False, True))
    ]
    rows = run_scenario(
        light.model_copy(update={"folders": 100, "name": "light-100"}), [PROFILES["lte"]], specs
    )
    md = _markdown(rows, [], light, 1.0)
    assert "LTE poll sync J/day" in md and "LTE push sync J/day" in md and "idle floor" in md
    cs = next(
        r
        for r in rows
        if r.discovery == DiscoveryStrategy.LIST_CHANGEDSINCE and not r.push and not r.compress
    )
    assert f"{cs.sync_energy_j_per_day:,.1f}" in md
