"""`cpmsync simulate schedule`: one day of the daemon's own schedule, as configured, priced.

The simulator re-IDLEs through daemon/schedule.py, so a daemon.toml change shows in the price.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import run_cli

KEYS = {"wakes_per_day", "joules_per_day", "battery_pct_per_day", "median_delay_s", "p95_delay_s"}


def schedule(*args: str) -> Any:
    out = run_cli(["simulate", "schedule", "--json", *args], timeout_s=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_daemon_defaults_settle_below_the_nat_and_push_within_seconds() -> None:
    d = schedule("--nat-timeout", "600", "--changes-per-day", "40")
    assert KEYS <= d.keys()
    assert d["heartbeat_s"] < 600  # learned below the NAT: no connection lost after learning
    assert d["median_delay_s"] <= 5
    # One wake per change plus one per NAT period is the floor; the daemon stays within 1.2x of it.
    floor = 40 + 86400 / 600
    assert d["wakes_per_day"] <= 1.2 * floor


def test_daemon_beats_push_with_a_two_minute_keepalive_and_polling_is_slow() -> None:
    daemon = schedule("--nat-timeout", "600")
    keepalive = schedule("--nat-timeout", "600", "--server-keepalive", "120")
    poll = schedule("--nat-timeout", "600", "--poll", "900")
    assert daemon["joules_per_day"] < keepalive["joules_per_day"] / 2
    assert poll["median_delay_s"] > 100 * daemon["median_delay_s"]
    assert poll["wakes_per_day"] == 96  # one per 15 minutes


def test_the_config_file_is_what_gets_priced(tmp_path: Path) -> None:
    conf = tmp_path / "daemon.toml"
    conf.write_text("[heartbeat]\nadaptive = false\ninitial_s = 120\n")
    fixed = schedule("--config", str(conf), "--nat-timeout", "1800", "--changes-per-day", "0")
    learned = schedule("--nat-timeout", "1800", "--changes-per-day", "0")
    assert fixed["heartbeat_s"] == 120 and fixed["wakes_per_day"] >= 86400 / 120 * 0.95
    assert learned["wakes_per_day"] < fixed["wakes_per_day"] / 5


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "daemon.toml"
    conf.write_text("[heartbeat]\nmin_s = 500\ninitial_s = 100\n")
    out = run_cli(["simulate", "schedule", "--config", str(conf)])
    assert out.returncode == 2 and "Traceback" not in out.stderr and "heartbeat" in out.stderr


def test_actions_are_priced_and_a_burst_costs_one_wake() -> None:
    """Apps' actions are wakes of their own unless they arrive together (the action window) or
    while the link is awake anyway: forty singles cost wakes, four bursts of ten almost none."""
    base = schedule("--nat-timeout", "600", "--folders", "100")
    singles = schedule("--nat-timeout", "600", "--folders", "100", "--actions-per-day", "40")
    bursts = schedule(
        "--nat-timeout", "600", "--folders", "100", "--actions-per-day", "40", "--actions-per-burst", "10"
    )
    assert base["wakes_per_day"] < singles["wakes_per_day"] <= base["wakes_per_day"] + 40
    assert bursts["wakes_per_day"] <= base["wakes_per_day"] + 4  # at most one wake per burst
    assert singles["joules_per_day"] > bursts["joules_per_day"] > base["joules_per_day"]
    assert bursts["wire_bytes_per_day"] > base["wire_bytes_per_day"]  # the STOREs went out
