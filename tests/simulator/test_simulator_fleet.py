"""The closed-form fleet model agrees with the packet-level simulator it summarises."""

from __future__ import annotations

import numpy as np
import pytest

from cpmsync.simulator.fleet import Fleet, fleet_energy, make_fleet
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import run_scenario
from cpmsync.simulator.scenario import Arrivals, Device, Scenario, StrategySpec

SPECS = (
    StrategySpec("list-status", False, False),
    StrategySpec("list-changedsince", True, False),
    StrategySpec("list-changedsince", False, True),
    StrategySpec("list-status-each", False, True),
)


def _as_fleet(scn: Scenario) -> Fleet:
    n = len(SPECS)
    a, d = scn.arrivals, scn.device

    def col(v: float) -> np.ndarray:
        return np.full(n, float(v))

    return Fleet(
        folders=col(scn.folders),
        active_folders=col(max(1, round(scn.folders * a.active_share))),
        messages_per_day=col(a.messages_per_day),
        read_share=col(a.read_elsewhere_share),
        poll_interval_s=col(d.poll_interval_s),
        server_keepalive_s=col(d.server_keepalive_s),
        nat_keepalive_s=col(d.nat_keepalive_s),
        reconnects_per_day=col(d.connection_losses_per_day),
        debounce_s=col(d.debounce_ms / 1000),
        strategy=np.arange(n),
        specs=SPECS,
    )


@pytest.mark.parametrize("radio", ["lte", "nr-nsa", "wifi"])
def test_closed_form_matches_the_exact_simulator(radio: str) -> None:
    scn = Scenario(
        name="check",
        folders=800,
        arrivals=Arrivals(messages_per_day=60, active_share=0.05, read_elsewhere_share=0.4),
        device=Device(poll_interval_s=600, server_keepalive_s=300, connection_losses_per_day=4),
    )
    profile = load_profile(radio)
    exact = run_scenario(scn, [profile], SPECS)
    closed = fleet_energy(_as_fleet(scn), profile)
    for i, row in enumerate(exact):
        assert closed.energy_j[i] == pytest.approx(row.energy_j_per_day, rel=0.10), row.strategy
        assert closed.wakes[i] == pytest.approx(row.radio_wakes_per_day, rel=0.10), row.strategy
        if row.push and row.discovery != "list-changedsince":
            continue  # bytes then hinge on how many of the Poisson reconnects one simulated day drew
        total = row.wire_bytes_up_per_day + row.wire_bytes_down_per_day
        assert closed.bytes_up[i] + closed.bytes_down[i] == pytest.approx(total, rel=0.25), row.strategy


def test_fleet_results_are_finite_positive_and_changedsince_moves_fewer_bytes() -> None:
    fl = make_fleet(20_000, seed=3)
    res = fleet_energy(fl, load_profile("lte"))
    assert np.isfinite(res.energy_j).all() and (res.energy_j > 0).all()
    assert (res.wakes >= 0).all() and (res.mean_delay_s > 0).all()
    # the fleet's idle floor: nobody can spend less than a day of idle paging
    assert res.energy_j.min() >= 0.99 * load_profile("lte").idle.average_mw / 1000 * 86400
    labels = [s.label for s in fl.specs]
    cs = fl.strategy == labels.index("list-changedsince+poll")
    ls = fl.strategy == labels.index("list-status+poll")
    assert res.bytes_down[cs].mean() < res.bytes_down[ls].mean() / 50
