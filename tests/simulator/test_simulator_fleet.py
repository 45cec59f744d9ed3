"""The closed-form fleet model agrees with the packet-level simulator it summarises."""

from __future__ import annotations

import numpy as np
import pytest

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.fleet import Fleet, fleet_energy, fleet_energy_by_strategy, make_fleet
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import run_scenario
from cpmsync.simulator.scenario import Arrivals, Device, Scenario, StrategySpec
from tests.support import run_cli

ORDER = (
    DiscoveryStrategy.LIST_CHANGEDSINCE,
    DiscoveryStrategy.LIST_STATUS,
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER,
)  # fewest bytes first
SPECS = (
    StrategySpec(DiscoveryStrategy.LIST_STATUS, False, False),
    StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, True, False),
    StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, True),
    StrategySpec(DiscoveryStrategy.LIST_STATUS_PER_FOLDER, False, True),
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
        if row.push and row.discovery != DiscoveryStrategy.LIST_CHANGEDSINCE:
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


def test_every_strategy_is_costed_on_the_same_device_days() -> None:
    """Audit P2-9: strategy rows compare the same devices, so their differences carry no sampling noise."""
    fl = make_fleet(5_000, seed=7)
    lte = load_profile("lte")
    by = fleet_energy_by_strategy(fl, lte)
    assert len(by) == len(fl.specs) and all(len(r.energy_j) == len(fl) for r in by)
    # the per-device-day evaluation agrees with the one that gives each device its own strategy
    own = fleet_energy(fl, lte)
    for i, r in enumerate(by):
        m = fl.strategy == i
        assert np.allclose(r.energy_j[m], own.energy_j[m]) and np.allclose(r.bytes_down[m], own.bytes_down[m])
    # paired: on every single device-day, fewer discovery bytes never cost more energy or wakes
    labels = [s.label for s in fl.specs]
    for mode in ("poll", "push"):
        cs, ls, each = (by[labels.index(f"{d}+{mode}")] for d in ORDER)
        assert (cs.bytes_down <= ls.bytes_down).all() and (ls.bytes_down <= each.bytes_down).all()
        assert (cs.energy_j <= ls.energy_j).all() and (ls.energy_j <= each.energy_j).all(), mode
        assert np.array_equal(cs.wakes, ls.wakes) and np.array_equal(ls.wakes, each.wakes)


def test_fleet_cli_shows_every_strategy_on_the_same_devices() -> None:
    out = run_cli(["simulate", "fleet", "--devices", "2000"], timeout_s=300)
    assert out.returncode == 0, out.stderr
    assert "2,000 device-days x 12 strategies" in out.stdout and "same device-days" in out.stdout
    assert "sync J/day above idle" in out.stdout
    assert out.stdout.count("list-changedsince") == 4
