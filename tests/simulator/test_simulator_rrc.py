"""Hand-computed energies for the RRC state machines (the ARO-style cost of a transfer timeline)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.simulator.radio import RadioProfile, Transfer, load_profile
from cpmsync.simulator.rrc import simulate_radio

LTE = load_profile("lte")
UMTS = load_profile("3g")

# Huang et al. MobiSys 2012, written out by hand (mW, s) so the test does not reuse the model's sums.
PROMO_J = 1.2107 * 0.2601
P_UP_MW = 438.39 * 5.64 + 1288.04
P_DOWN_MW = 51.97 * 12.74 + 1288.04
CR_J = 1.060 * 0.100
SHORT_MW = 1060.0 + (1680.2 - 1060.0) * 1 / 20
LONG_MW = 1060.0 + (1680.2 - 1060.0) * 1 / 40
SHORT_J = SHORT_MW / 1000 * 0.320
LONG_J = LONG_MW / 1000 * (11.576 - 0.100 - 0.320)
FULL_TAIL_J = CR_J + SHORT_J + LONG_J


def up_s(nbytes: int) -> float:
    return nbytes * 8 / 5.64e6


def test_one_small_lte_transfer_costs_promotion_transfer_and_one_full_tail() -> None:
    r = simulate_radio(LTE, [Transfer(0.0, "up", 200)])
    expected = PROMO_J + P_UP_MW / 1000 * up_s(200) + FULL_TAIL_J
    assert r.energy_j == pytest.approx(expected, rel=1e-9)
    assert r.wakes == 1
    assert r.radio_on_s == pytest.approx(0.2601 + up_s(200) + 11.576)


def test_two_lte_transfers_inside_one_tail_share_it() -> None:
    gap = 5.0
    r = simulate_radio(LTE, [Transfer(0.0, "up", 200), Transfer(0.2601 + up_s(200) + gap, "up", 200)])
    # the first tail is cut after `gap` seconds: CR, short DRX, then long DRX for the rest
    first_tail_j = CR_J + SHORT_J + LONG_MW / 1000 * (gap - 0.42)
    expected = PROMO_J + 2 * P_UP_MW / 1000 * up_s(200) + first_tail_j + FULL_TAIL_J
    assert r.energy_j == pytest.approx(expected, rel=1e-9)
    assert r.wakes == 1
    apart = simulate_radio(LTE, [Transfer(0.0, "up", 200), Transfer(100.0, "up", 200)], end_s=r.end_s + 100)
    assert apart.wakes == 2 and apart.energy_j > r.energy_j


def test_downlink_transfer_uses_the_downlink_throughput_model() -> None:
    r = simulate_radio(LTE, [Transfer(0.0, "down", 100_000)])
    d = 100_000 * 8 / 12.74e6
    assert r.energy_j == pytest.approx(PROMO_J + P_DOWN_MW / 1000 * d + FULL_TAIL_J, rel=1e-9)


def test_small_3g_transfer_in_fach_below_the_buffer_threshold_stays_in_fach() -> None:
    # a big transfer promotes IDLE -> DCH (2 s); 5 s later DCH drops to FACH; at +8 s a 300 B
    # upload (< 543 B RLC threshold) goes out on FACH: no promotion, no DCH, FACH timer restarts
    big = 50_000
    t_small = 2.0 + big * 8 / 1.0e6 + 8.0
    r = simulate_radio(UMTS, [Transfer(0.0, "down", big), Transfer(t_small, "up", 300)], keep_segments=True)
    assert r.wakes == 1
    assert r.time_in_state_s["dch"] == pytest.approx(5.0)
    assert "transfer_up" not in r.time_in_state_s
    fach_send_s = 300 * 8 / 16_000
    assert r.time_in_state_s["fach"] == pytest.approx(3.0 + fach_send_s + 12.0)
    expected = 0.46 * 2.0 + 0.8 * big * 8 / 1.0e6 + 0.8 * 5.0 + 0.46 * (3.0 + fach_send_s + 12.0)
    assert r.energy_j == pytest.approx(expected, rel=1e-9)


def test_3g_transfer_above_the_threshold_in_fach_promotes_to_dch() -> None:
    t2 = 2.0 + 0.0004 + 8.0
    r = simulate_radio(UMTS, [Transfer(0.0, "down", 50), Transfer(t2, "down", 476)])
    assert r.wakes == 2  # IDLE->DCH, then FACH->DCH
    assert r.time_in_state_s["promotion"] == pytest.approx(2.0 + 1.5)


@pytest.mark.parametrize(
    ("profile_name", "period"),
    # 3G: after a small FACH transfer only the 12 s FACH timer restarts, so T must beat 12 s
    [("lte", 9.0), ("lte-aro", 8.0), ("nr-nsa", 8.0), ("nr-sa", 8.0), ("3g", 9.0)],
)
def test_polling_faster_than_the_tail_keeps_the_radio_connected(profile_name: str, period: float) -> None:
    p = load_profile(profile_name)
    n = 50
    r = simulate_radio(p, [Transfer(i * period, "up", 120) for i in range(n)], end_s=(n - 1) * period + 1)
    assert r.wakes == 1
    off = [ph.state for ph in p.phases if not ph.radio_on]
    assert sum(r.time_in_state_s.get(s, 0.0) for s in off) == 0.0
    assert r.radio_on_s == pytest.approx(r.end_s - r.start_s - sum(r.time_in_state_s.get(s, 0) for s in off))
    slower = simulate_radio(p, [Transfer(i * p.connected_s * 1.5, "up", 120) for i in range(n)])
    assert slower.wakes == n


def test_wifi_psm_tail_is_a_quarter_second() -> None:
    w = load_profile("wifi")
    r = simulate_radio(w, [Transfer(0.0, "down", 1000)])
    assert r.energy_j == pytest.approx(0.403 * (1000 * 8 / 30e6 + 0.25), rel=1e-9)


def test_nr_profiles_apply_the_documented_calibration() -> None:
    sa = load_profile("nr-sa")
    assert sa.mw_per_unit == 10.6
    assert sa.transfer.beta_down_mw == pytest.approx(300 * 10.6)
    cdrx = sa.phases[0]
    assert cdrx.average_mw == pytest.approx((8 * 100 + 152 * 1 + 450) * 10.6 / 160)


transfers = st.lists(
    st.builds(
        Transfer,
        st.floats(0, 600, allow_nan=False),
        st.sampled_from(["up", "down"]),
        st.integers(0, 200_000),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    trace=transfers,
    extra=transfers.filter(bool),
    name=st.sampled_from(["lte", "3g", "nr-nsa", "nr-sa", "wifi"]),
)
def test_energy_is_never_negative_and_grows_with_added_transfers(
    trace: list[Transfer], extra: list[Transfer], name: str
) -> None:
    p: RadioProfile = load_profile(name)
    horizon = 2000.0
    base = simulate_radio(p, trace, end_s=horizon)
    more = simulate_radio(p, trace + extra, end_s=horizon)
    assert base.energy_j >= 0 and all(v >= 0 for v in base.time_in_state_s.values())
    assert more.energy_j >= base.energy_j - 1e-9
    assert more.wakes >= 0 and math.isfinite(more.energy_j)
    assert sum(more.time_in_state_s.values()) == pytest.approx(more.end_s - more.start_s)
