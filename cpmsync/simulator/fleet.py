"""Closed-form, vectorised energy of many device-days (numpy): the fleet view.

The exact simulator replays every packet; a fleet of a million device-days needs a formula.
Per device-day and per hour of the diurnal profile, bursts arrive as a periodic stream (server
keep-alive every K s, or polls every T s) superposed with Poisson events (pushes, re-IDLEs,
reconnects) of rate mu. For a burst, the time G to the next one survives as
    S(s) = exp(-mu*s) * [s < K]            after a periodic burst,
    S(s) = exp(-mu*s) * max(0, 1 - s/K)    after a Poisson burst (the next tick is uniform).
The expected energy from the end of a burst to the next is the integral of the tail/idle power
P(s) times S(s) -- isolated bursts pay a full tail, bursts inside another's tail share it -- and
the chance that the next burst needs a promotion from phase i is S(start_i) - S(end_i).
Per-event bytes come from the exact byte model (`event_costs`), fitted linear in folder count
for discovery, so the fleet and the per-packet simulator share one source of bytes.
Limitations: 3G's "small transfer stays in FACH" rule is not in the closed form (every promotion-
needing phase promotes), and neither are NAT idle timeouts (the held connection is assumed kept
alive by its keep-alives); use the packet-level simulator (`simulate run`) for those.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cpmsync.simulator.account import make_account, make_message
from cpmsync.simulator.catchup import ImapSession
from cpmsync.simulator.radio import RadioProfile
from cpmsync.simulator.scenario import DEFAULT_DIURNAL, StrategySpec, all_strategy_specs
from cpmsync.simulator.wire import WireConfig, WireCount

__all__ = [
    "EventCost",
    "Fleet",
    "FleetResult",
    "event_costs",
    "fleet_energy",
    "fleet_energy_by_strategy",
    "make_fleet",
]

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EventCost:
    """Wire bytes and round trips of one kind of burst."""

    up: float
    down: float
    round_trips: float

    def __add__(self, o: EventCost) -> EventCost:
        return EventCost(self.up + o.up, self.down + o.down, self.round_trips + o.round_trips)

    def scale(self, k: float) -> EventCost:
        return EventCost(self.up * k, self.down * k, self.round_trips * k)


def _cost(before: dict[str, int], count: WireCount, i0: int) -> EventCost:
    flights = count.flights[i0:]
    turns = sum(1 for a, b in itertools.pairwise(flights) if a[0] != b[0])
    return EventCost(count.wire_up - before["wire_up"], count.wire_down - before["wire_down"], turns / 2)


def _measure(sess: ImapSession, fn: Any) -> EventCost:
    before = sess.counter.count.as_dict()
    i0 = len(sess.counter.count.flights)
    fn(sess)
    c = sess.counter.finish()
    return _cost(before, c, i0)


@functools.cache
def event_costs(spec: StrategySpec, wire: WireConfig | None = None) -> dict[str, EventCost]:
    """Bytes of each burst kind for one strategy, measured with the real codec and wire model.

    discovery(F, K) = disc_fixed + F * disc_per_folder + K * disc_per_changed, fitted from exact
    byte counts at F = 300 and 3000 folders (LIST/STATUS lines are i.i.d. per folder).
    """
    import random

    rng = random.Random(5)
    out: dict[str, EventCost] = {}
    s = ImapSession(wire)
    s.connect(compress=spec.compress)
    s.notify()
    s.counter.finish()
    out["server_keepalive"] = _measure(s, lambda x: x.server_keepalive())
    out["reidle"] = _measure(s, lambda x: x.reidle())
    acct = make_account(50, seed=3)
    name = list(acct.folders)[3]
    uid = acct.new_message(name)
    msg = make_message(rng, name, "tel:+15145550100", uid)

    def push_new(x: ImapSession) -> None:
        x.push_status(acct.folders[name])

    def sync_new(x: ImapSession) -> None:
        x.done()
        x.sync_folder(acct.folders[name], acct.modseq - 1, [(uid, msg)])
        x.unselect()
        x.idle()

    def sync_read(x: ImapSession) -> None:
        x.done()
        x.sync_folder(acct.folders[name], acct.modseq - 1, (), [uid])
        x.unselect()
        x.idle()

    out["push_new"] = _measure(s, push_new) + _measure(s, sync_new)
    out["push_read"] = _measure(s, push_new) + _measure(s, sync_read)
    fresh = ImapSession(wire)
    out["connect"] = _measure(fresh, lambda x: x.connect(compress=spec.compress))
    out["notify"] = _measure(fresh, lambda x: x.notify())
    out["logout"] = _measure(fresh, lambda x: x.logout())
    fetch = ImapSession(wire)
    fetch.connect(compress=spec.compress)
    fetch.counter.finish()
    out["fetch_changed"] = _measure(
        fetch, lambda x: x.sync_folder(acct.folders[name], acct.modseq - 1, [(uid, msg)])
    )
    # discovery: exact bytes at two sizes and two change counts, solved for a linear model
    pts: dict[tuple[int, int], EventCost] = {}
    for f_count in (300, 3000):
        a = make_account(f_count, seed=11)
        names = list(a.folders)
        for k in (0, 20):
            sess = ImapSession(wire)
            sess.connect(compress=spec.compress)
            sess.counter.finish()
            base = a.modseq
            pts[(f_count, k)] = _measure(
                sess, lambda x, a=a, c=names[:k], b=base: x.discover(spec.discovery, a.folders, c, b)
            )
    per_folder = (pts[(3000, 0)] + pts[(300, 0)].scale(-1)).scale(1 / 2700)
    per_changed = (pts[(3000, 20)] + pts[(3000, 0)].scale(-1)).scale(1 / 20)
    fixed = pts[(300, 0)] + per_folder.scale(-300)
    out["disc_fixed"] = EventCost(max(fixed.up, 0), max(fixed.down, 0), max(fixed.round_trips, 1))
    out["disc_per_folder"] = EventCost(per_folder.up, per_folder.down, 0.0)
    out["disc_per_changed"] = EventCost(max(per_changed.up, 0), max(per_changed.down, 0), 0.0)
    return out


@dataclass(slots=True)
class Fleet:
    """Device-days as columns; `strategy` indexes `specs`."""

    folders: F64
    active_folders: F64
    messages_per_day: F64
    read_share: F64
    poll_interval_s: F64
    server_keepalive_s: F64  # 0 = none
    nat_keepalive_s: F64  # 0 = none
    reconnects_per_day: F64
    debounce_s: F64
    strategy: NDArray[np.int64]
    specs: tuple[StrategySpec, ...]

    def __len__(self) -> int:
        return len(self.folders)


@dataclass(slots=True)
class FleetResult:
    energy_j: F64
    wakes: F64
    bytes_up: F64
    bytes_down: F64
    radio_on_s: F64
    mean_delay_s: F64


def make_fleet(n: int, *, seed: int = 0, specs: tuple[StrategySpec, ...] | None = None) -> Fleet:
    """A varied fleet: folder counts log-uniform over 50..100,000, rates log-normal, mixed settings."""
    rng = np.random.default_rng(seed)
    sp = specs or tuple(all_strategy_specs())
    folders = np.floor(np.exp(rng.uniform(math.log(50), math.log(100_000), n)))
    return Fleet(
        folders=folders,
        active_folders=np.maximum(1.0, np.floor(folders * rng.uniform(0.002, 0.1, n))),
        messages_per_day=np.clip(rng.lognormal(math.log(80), 1.0, n), 1, 5000),
        read_share=rng.uniform(0, 0.8, n),
        poll_interval_s=rng.choice(np.array([300.0, 900.0, 1800.0, 3600.0]), n),
        server_keepalive_s=rng.choice(np.array([120.0, 600.0, 1740.0]), n),
        nat_keepalive_s=rng.choice(np.array([0.0, 840.0, 1740.0]), n),
        reconnects_per_day=rng.uniform(0, 24, n),
        debounce_s=np.full(n, 2.0),
        strategy=rng.integers(0, len(sp), n),
        specs=sp,
    )


def _i0(mu: F64, a: F64 | float, b: F64 | float) -> F64:
    """Integral of exp(-mu*s) over [a, b] (b >= a), stable as mu -> 0."""
    length = np.maximum(np.asarray(b) - a, 0.0)
    x = mu * length
    safe = np.where(x > 1e-9, -np.expm1(-x) / np.where(mu > 0, mu, 1.0), length)
    return np.asarray(np.exp(-mu * a) * safe, dtype=np.float64)


def _i1(mu: F64, a: F64 | float, b: F64 | float) -> F64:
    """Integral of s*exp(-mu*s) over [a, b]."""
    length = np.maximum(np.asarray(b) - a, 0.0)
    x = mu * length
    m = np.where(mu > 0, mu, 1.0)
    j_big = (1 - np.exp(-x) * (1 + x)) / (m * m)
    j_small = length**2 / 2 - mu * length**3 / 3 + mu**2 * length**4 / 8
    j = np.where(x > 1e-3, j_big, j_small)
    return np.asarray(a * _i0(mu, a, b) + np.exp(-mu * a) * j, dtype=np.float64)


_BIG_S = 1e7  # stands in for "never" (no periodic stream, last phase): keeps the algebra NaN-free


def _after_bursts(
    profile: RadioProfile, mu: F64, period: F64
) -> tuple[tuple[F64, F64, F64, F64], tuple[F64, F64, F64, F64]]:
    """Expected (tail+idle J, promotion J, promotions, radio-on s) after a periodic and after a Poisson burst.

    One pass over the phase boundaries shares the exponentials between both kinds of burst.
    """
    k = np.where(period > 0, period, _BIG_S)
    finite_k = period > 0
    mu_safe = np.where(mu > 0, mu, 1.0)
    bounds = [0.0]
    for ph in profile.phases:
        bounds.append(_BIG_S if ph.duration_ms is None else bounds[-1] + ph.duration_ms / 1000)
    clipped = [np.minimum(x, k) for x in bounds]
    exps = [np.exp(-mu * c) for c in clipped]
    per = [np.zeros_like(mu) for _ in range(4)]
    poi = [np.zeros_like(mu) for _ in range(4)]
    inv_k = np.where(finite_k, 1.0 / k, 0.0)

    def surv(i: int) -> tuple[F64, F64]:
        if bounds[i] >= _BIG_S:
            return np.zeros_like(mu), np.zeros_like(mu)
        inside = bounds[i] < k
        sp = np.where(inside, exps[i], 0.0)
        sq = np.where(finite_k, exps[i] * np.clip(1 - bounds[i] * inv_k, 0, None), exps[i])
        return sp, sq

    for i, ph in enumerate(profile.phases):
        a, ea, eb = clipped[i], exps[i], exps[i + 1]
        length = clipped[i + 1] - a
        x = mu * length
        i0 = np.where(x > 1e-9, (ea - eb) / mu_safe, length * ea)
        ratio = np.where(ea > 0, eb / np.where(ea > 0, ea, 1.0), 0.0)
        j = np.where(
            x > 1e-3,
            (1 - ratio * (1 + x)) / (mu_safe * mu_safe),
            length**2 / 2 - mu * length**3 / 3 + mu**2 * length**4 / 8,
        )
        i1 = a * i0 + ea * j
        for acc, t in ((per, i0), (poi, i0 - i1 * inv_k)):
            acc[0] += ph.average_mw / 1000 * t
            if ph.radio_on:
                acc[3] += t
        if ph.needs_promotion:
            sp0, sq0 = surv(i)
            sp1, sq1 = surv(i + 1)
            promo_s = (ph.promotion_ms or 0.0) / 1000
            for acc, p in ((per, sp0 - sp1), (poi, sq0 - sq1)):
                acc[1] += p * ph.promotion_mw / 1000 * promo_s
                acc[2] += p
                acc[3] += p * promo_s
    return (per[0], per[1], per[2], per[3]), (poi[0], poi[1], poi[2], poi[3])


def fleet_energy(
    fleet: Fleet, profile: RadioProfile, *, wire: WireConfig | None = None, chunk: int = 200_000
) -> FleetResult:
    """Expected energy, wakes, bytes and delay of every device-day with its own `fleet.strategy`."""
    n = len(fleet)
    res = FleetResult(*(np.zeros(n) for _ in range(6)))
    tab = _costs_table(fleet.specs, wire)
    is_push = np.array([s.push for s in fleet.specs])
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        shared = _shared_terms(fleet, profile, sl)
        st = fleet.strategy[sl]
        _apply(shared, profile, tab, st, is_push[st], res, sl)
    return res


def fleet_energy_by_strategy(
    fleet: Fleet, profile: RadioProfile, *, wire: WireConfig | None = None, chunk: int = 100_000
) -> list[FleetResult]:
    """Every strategy of `fleet.specs` on the same device-days (common random numbers).

    Returns one result per spec, aligned with `fleet.specs`; `fleet.strategy` is ignored. The
    radio terms that do not depend on the strategy are computed once per device-day and every
    strategy's bytes enter linearly, so all strategies cost little more than one.
    """
    n = len(fleet)
    out = [FleetResult(*(np.zeros(n) for _ in range(6))) for _ in fleet.specs]
    tab = _costs_table(fleet.specs, wire)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        shared = _shared_terms(fleet, profile, sl)
        for i, spec in enumerate(fleet.specs):
            _apply(shared, profile, tab, i, spec.push, out[i], sl)
    return out


_KEYS = (
    "server_keepalive", "reidle", "push_new", "push_read", "connect", "notify", "logout",
    "fetch_changed", "disc_fixed", "disc_per_folder", "disc_per_changed",
)  # fmt: skip


def _costs_table(specs: tuple[StrategySpec, ...], wire: WireConfig | None) -> dict[str, NDArray[np.float64]]:
    """Per byte-model key, a (strategy, [up, down, round_trips]) array."""
    table: dict[str, NDArray[np.float64]] = {}
    for key in _KEYS:
        table[key] = np.array(
            [[getattr(event_costs(s, wire)[key], f) for f in ("up", "down", "round_trips")] for s in specs]
        )
    return table


@dataclass(slots=True)
class _Mode:
    """One sync mode (push or poll) of a chunk of device-days, split into what the strategy changes and not.

    `energy`, `wakes`, `on_s`, `delay_num`: the strategy-independent part (tails, idle, promotions).
    Per byte-model key: `ud` counts the bursts whose up/down bytes are paid, `rt` those whose round
    trips are, and `delay_ud`/`delay_rt` weigh the burst durations into the change delay (polling).
    """

    energy: F64
    wakes: F64
    on_s: F64
    delay_num: F64
    ud: dict[str, F64]
    rt: dict[str, F64]
    delay_ud: dict[str, F64]
    delay_rt: dict[str, F64]


@dataclass(slots=True)
class _Shared:
    push: _Mode
    poll: _Mode
    delay_den: F64


def _shared_terms(fleet: Fleet, profile: RadioProfile, sl: slice) -> _Shared:
    """Everything of a chunk of device-days that does not depend on the strategy's bytes."""
    tm = profile.transfer
    rtt_s = tm.rtt_ms / 1000
    p_conn_w = profile.phases[0].average_mw / 1000
    f = fleet.folders[sl]
    act = fleet.active_folders[sl]
    lam = fleet.messages_per_day[sl]
    rs = fleet.read_share[sl]
    zero = np.zeros_like(f)

    def mode() -> _Mode:
        return _Mode(
            zero.copy(), zero.copy(), zero.copy(), zero.copy(),
            {k: zero.copy() for k in _KEYS}, {k: zero.copy() for k in _KEYS}, {}, {},
        )  # fmt: skip

    push, poll = mode(), mode()
    poll.delay_ud = {k: zero.copy() for k in _KEYS}
    poll.delay_rt = {k: zero.copy() for k in _KEYS}
    delay_den = zero.copy()

    w = np.array(DEFAULT_DIURNAL) / sum(DEFAULT_DIURNAL)
    hour = 3600.0
    idle = profile.idle
    tail_j = 0.0
    for ph in profile.phases:
        if ph.needs_promotion:
            break
        tail_j += ph.average_mw / 1000 * (ph.duration_ms or 0.0) / 1000
    idle_w = idle.average_mw / 1000
    promo_s = (idle.promotion_ms or 0.0) / 1000
    promo_j = idle.promotion_mw / 1000 * promo_s
    wake_delay = (idle.promotion_ms or 0.0) / 1000
    paging = (idle.drx_cycle_ms or 0.0) / 2000

    ka = fleet.server_keepalive_s[sl]
    nat = fleet.nat_keepalive_s[sl]
    rec = fleet.reconnects_per_day[sl]
    deb = fleet.debounce_s[sl]
    split = deb > profile.tail_s
    # the debounce window: spent connected when it is shorter than the tail; otherwise the radio
    # tails off and idles, and the sync after it is a second wake
    deb_e = np.where(split, tail_j + (deb - profile.tail_s) * idle_w + promo_j, deb * p_conn_w)
    deb_on = np.where(split, profile.tail_s + promo_s, deb)
    reidles = np.where(nat > 0, hour / np.where(nat > 0, nat, 1.0), 0.0)
    n_ka = np.where(ka > 0, hour / np.where(ka > 0, ka, 1.0), 0.0)
    recs = rec / 24
    t_poll = fleet.poll_interval_s[sl]
    polls = hour / t_poll
    e_after, pj, wk, on_after = _after_bursts(profile, zero, t_poll)[0]
    for h in range(24):
        # --- push: periodic server keep-alives + Poisson pushes, re-IDLEs, reconnects ----------
        changes = lam * w[h] * (1 + rs)
        pushes = changes  # per hour
        mu = (pushes + reidles + recs) / hour
        (e_p, pj_p, wk_p, on_p), (e_q, pj_q, wk_q, on_q) = _after_bursts(profile, mu, ka)
        n_q = mu * hour
        k_rec = np.minimum(act, changes * 5 / hour)  # changes during a 5 s outage
        u = push.ud
        r = push.rt
        for key, count in (("server_keepalive", n_ka), ("reidle", reidles)):
            u[key] += count
            r[key] += count
        u["push_new"] += lam * w[h]
        u["push_read"] += lam * w[h] * rs
        r["push_new"] += pushes
        _add_catchups(u, r, recs, ("connect", "disc_fixed", "notify"), folders=f, changed=k_rec)
        wk_push = n_ka * wk_p + n_q * wk_q + np.where(split, pushes, 0.0)
        push.energy += pushes * deb_e + n_ka * (e_p + pj_p) + n_q * (e_q + pj_q)
        push.wakes += wk_push
        push.on_s += pushes * deb_on + n_ka * on_p + n_q * on_q
        # a push finds the radio idle with the chance a Poisson burst's predecessor gap exceeded the tail
        p_idle = np.where(n_ka + n_q > 0, wk_push / np.maximum(n_ka + n_q, 1e-12), 1.0)
        push.delay_num += changes * (deb + 4 * rtt_s + p_idle * (wake_delay + paging))
        # --- poll: periodic polls, nothing else --------------------------------------------------
        m = changes * t_poll / hour  # changes per interval
        k_poll = np.minimum(act * (1 - np.exp(-m / np.maximum(act, 1.0))), f)
        for weights, target_ud, target_rt in (
            (polls, poll.ud, poll.rt),
            (changes, poll.delay_ud, poll.delay_rt),
        ):
            _add_catchups(
                target_ud, target_rt, weights, ("connect", "disc_fixed", "logout"), folders=f, changed=k_poll
            )
        poll.energy += polls * (e_after + pj)
        poll.wakes += polls * wk
        poll.on_s += polls * on_after
        poll.delay_num += changes * (t_poll / 2 + wk * wake_delay)
        delay_den += changes
    return _Shared(push, poll, delay_den)


def _add_catchups(
    ud: dict[str, F64],
    rt: dict[str, F64],
    weights: F64,
    fixed: tuple[str, ...],
    *,
    folders: F64,
    changed: F64,
) -> None:
    """`weights` catch-ups, each the `fixed` commands once, discovery over `folders` folders and
    `changed` changed ones, and a fetch of the changed ones: bytes (`ud`) and round trips (`rt`)."""
    for key in fixed:
        ud[key] += weights
        rt[key] += weights
    ud["disc_per_folder"] += weights * folders
    ud["disc_per_changed"] += weights * changed
    ud["fetch_changed"] += weights * changed
    rt["fetch_changed"] += weights * changed


def _apply(
    shared: _Shared,
    profile: RadioProfile,
    tab: dict[str, NDArray[np.float64]],
    st: NDArray[np.int64] | int,
    push: NDArray[np.bool_] | bool,
    res: FleetResult,
    sl: slice,
) -> None:
    """Add one strategy's bytes (per device-day when `st` is an array) to the shared terms."""
    tm = profile.transfer
    j_up = tm.power_mw("up") / 1000 * 8 / (tm.uplink_mbps * 1e6)
    j_dn = tm.power_mw("down") / 1000 * 8 / (tm.downlink_mbps * 1e6)
    s_up = 8 / (tm.uplink_mbps * 1e6)
    s_dn = 8 / (tm.downlink_mbps * 1e6)
    rtt_s = tm.rtt_ms / 1000
    j_rt = rtt_s * profile.phases[0].average_mw / 1000

    def one(m: _Mode) -> tuple[F64, F64, F64, F64, F64, F64]:
        energy, on_s, delay = m.energy.copy(), m.on_s.copy(), m.delay_num.copy()
        up = np.zeros_like(energy)
        dn = np.zeros_like(energy)
        for key in _KEYS:
            c = tab[key][st]
            u, d, r = (c[..., 0], c[..., 1], c[..., 2])
            mu, mr = m.ud[key], m.rt[key]
            energy += mu * (u * j_up + d * j_dn) + mr * (r * j_rt)
            on_s += mu * (u * s_up + d * s_dn) + mr * (r * rtt_s)
            up += mu * u
            dn += mu * d
            if m.delay_ud:
                delay += m.delay_ud[key] * (u * s_up + d * s_dn) + m.delay_rt[key] * (r * rtt_s)
        return energy, m.wakes, up, dn, on_s, delay

    if isinstance(push, bool):
        parts = one(shared.push if push else shared.poll)
    else:
        a, b = one(shared.push), one(shared.poll)
        parts = tuple(np.where(push, x, y) for x, y in zip(a, b, strict=True))  # type: ignore[assignment]
    energy, wakes, up, dn, on_s, delay = parts
    res.energy_j[sl] = energy
    res.wakes[sl] = wakes
    res.bytes_up[sl] = up
    res.bytes_down[sl] = dn
    res.radio_on_s[sl] = on_s
    res.mean_delay_s[sl] = delay / np.maximum(shared.delay_den, 1e-12)
