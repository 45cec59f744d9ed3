"""Scenario days: push vs polling, NAT timeouts, deletions and LIST-CHANGEDSINCE's blind spot."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpmsync.config import ConfigError
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.account import make_account
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import run_scenario
from cpmsync.simulator.scenario import Arrivals, Device, Scenario, StrategySpec, load_scenario
from cpmsync.simulator.workload import generate_changes, plan_day

LTE = load_profile("lte")


def small(**device: float) -> Scenario:
    return Scenario(
        name="small",
        folders=300,
        arrivals=Arrivals(messages_per_day=50, folders_created_per_day=2, folders_deleted_per_day=2),
        device=Device(**device),
    )


def test_shipped_scenarios_load() -> None:
    assert load_scenario("light").folders == 100
    assert load_scenario("heavy-group-chat").folders == 10_000
    assert load_scenario("archive").folders == 50_000


def test_bad_scenario_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "x"\nfolders = 0\n[arrivals]\nmessages_per_day = 1.0\n')
    with pytest.raises(ConfigError, match="folders"):
        load_scenario(f)


def test_arrivals_follow_the_diurnal_profile() -> None:
    scn = Scenario(name="d", folders=50, arrivals=Arrivals(messages_per_day=5000, read_elsewhere_share=0))
    ch = generate_changes(scn, make_account(50))
    night = sum(1 for c in ch if 3 * 3600 <= c.t_s < 5 * 3600)
    evening = sum(1 for c in ch if 19 * 3600 <= c.t_s < 21 * 3600)
    assert 4000 < len(ch) < 6000
    assert evening > 8 * night


def test_every_change_is_delivered_and_push_is_faster_than_polling() -> None:
    scn = small()
    rows = run_scenario(
        scn,
        [LTE],
        [
            StrategySpec(DiscoveryStrategy.LIST_STATUS, False, False),
            StrategySpec(DiscoveryStrategy.LIST_STATUS, False, True),
        ],
    )
    poll, push = rows
    assert push.mean_change_delay_s < 10 < poll.mean_change_delay_s
    assert poll.mean_change_delay_s == pytest.approx(scn.device.poll_interval_s / 2, rel=0.3)


def test_changedsince_learns_of_deletions_only_at_the_daily_scan_poll() -> None:
    scn = small()
    plan = plan_day(scn, StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, False))
    scans = [a for a in plan.actions if a.label == "poll+deletion-scan"]
    assert len(scans) == 1 and scans[0].delivers
    assert all(t <= scans[0].t_s for t in scans[0].delivers)
    # the plain LIST of every folder is what the scan costs
    assert sum(n for d, n in scans[0].flights if d == "down") > 300 * 30
    with_status = plan_day(scn, StrategySpec(DiscoveryStrategy.LIST_STATUS, False, False))
    assert not [a for a in with_status.actions if a.label == "poll+deletion-scan"]


def test_a_nat_timeout_without_keepalives_costs_reconnects_and_delay() -> None:
    kept = small(server_keepalive_s=120, nat_timeout_s=600)
    dropped = small(server_keepalive_s=0, nat_keepalive_s=1740, nat_timeout_s=600)
    spec = StrategySpec(DiscoveryStrategy.LIST_CHANGEDSINCE, False, True)
    a = plan_day(kept, spec)
    b = plan_day(dropped, spec)
    assert not [x for x in a.actions if x.label == "reidle-dead"]
    dead = [x for x in b.actions if x.label == "reidle-dead"]
    assert dead and all(f[0] == "up" for f in dead[0].flights)
    assert sum(1 for x in b.actions if x.label == "reconnect") >= len(dead)
    ra = run_scenario(kept, [LTE], [spec])[0]
    rb = run_scenario(dropped, [LTE], [spec])[0]
    assert rb.mean_change_delay_s > 10 * ra.mean_change_delay_s
    assert rb.energy_j_per_day < ra.energy_j_per_day  # fewer wakes, paid for in delay


def test_strategies_share_one_day_of_changes() -> None:
    scn = small()
    plans = [
        plan_day(scn, StrategySpec(d, False, False))
        for d in (DiscoveryStrategy.LIST_STATUS, DiscoveryStrategy.LIST_CHANGEDSINCE)
    ]
    assert plans[0].changes == plans[1].changes
    assert plans[1].totals["imap_down"] < plans[0].totals["imap_down"] / 3
