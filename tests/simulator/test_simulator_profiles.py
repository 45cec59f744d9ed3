"""Radio profiles are data: every number cites its source; users can load their own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cpmsync.config import ConfigError
from cpmsync.simulator.radio import _profiles_dir, builtin_profile_names, load_profile

NUMBER_LINE = re.compile(r"^\s*[a-z_]+\s*=\s*-?[0-9]")


@pytest.mark.parametrize("name", builtin_profile_names())
def test_every_number_in_a_shipped_profile_cites_a_source(name: str) -> None:
    text = (_profiles_dir() / f"{name}.toml").read_text()
    for line in text.splitlines():
        if NUMBER_LINE.match(line):
            assert "#" in line, f"{name}: uncited number: {line.strip()}"
            comment = line.split("#", 1)[1].lower()
            assert any(k in comment for k in ("huang", "qian", "aro", "tr38840", "narayanan", "ts38331",
                                              "assumption", "calibration", "psm")), line  # fmt: skip


def test_disagreeing_sources_get_a_second_profile() -> None:
    names = set(builtin_profile_names())
    assert {"lte", "lte-aro", "3g", "3g-aro", "nr-nsa", "nr-sa", "wifi"} <= names
    assert load_profile("3g").phases[0].power_mw == 800.0
    assert load_profile("3g-aro").phases[0].power_mw == 700.0
    assert load_profile("lte").tail_s == pytest.approx(11.576)
    assert load_profile("lte-aro").transfer.beta_up_mw == 1200.0


def test_config_radio_links_to_the_packaged_profiles() -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in builtin_profile_names():
        link = repo / "config" / "radio" / f"{name}.toml"
        assert link.resolve() == (_profiles_dir() / f"{name}.toml").resolve()


def test_a_user_profile_loads_from_a_path(tmp_path: Path) -> None:
    src = (_profiles_dir() / "lte.toml").read_text().replace('name = "lte"', 'name = "my-lte"')
    src = src.replace("duration_ms = 11156.0", "duration_ms = 5000.0")
    f = tmp_path / "mine.toml"
    f.write_text(src)
    p = load_profile(f)
    assert p.name == "my-lte" and p.tail_s == pytest.approx(5.42)


def test_bad_profiles_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown radio profile"):
        load_profile("carrier-pigeon")
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\ntechnology = "x"\n[transfer]\nalpha_up_mw_per_mbps = -1\n')
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_profile(f)
    g = tmp_path / "broken.toml"
    g.write_text("[transfer\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(g)
