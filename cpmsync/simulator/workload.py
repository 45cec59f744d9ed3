"""A simulated day: server-side changes, the device's sync actions, and their bytes.

`plan_day` replays one scenario for one strategy against a simulated account and records every
action the device takes (a push, a keep-alive, a poll, a reconnect with catch-up) as flights of
wire bytes at a time. The plan does not depend on the radio; `plan_transfers` lays it on a radio
profile's RTT and link rates to get the transfers the RRC machine costs.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from cpmsync.daemon.schedule import IDLE_MAX_S, HeartbeatLadder, WakeSchedule
from cpmsync.daemon.settings import HeartbeatSection
from cpmsync.simulator.account import Account, make_account, make_message
from cpmsync.simulator.catchup import ImapSession, _imap, _list_line
from cpmsync.simulator.radio import RadioProfile, Transfer
from cpmsync.simulator.scenario import Device, Scenario, StrategySpec
from cpmsync.simulator.wire import WireConfig

__all__ = ["Action", "Change", "DayPlan", "generate_changes", "plan_day", "plan_transfers"]


@dataclass(frozen=True, slots=True)
class Change:
    """Something another party did on the server."""

    t_s: float
    kind: str  # new | read | create | delete
    folder: str


@dataclass(slots=True)
class Action:
    """What the device (or server, for pushes) sent at one moment, and which changes it delivered."""

    t_s: float
    label: str
    flights: list[tuple[str, int]]
    delivers: list[float] = field(default_factory=list)


@dataclass(slots=True)
class DayPlan:
    scenario: str
    strategy: StrategySpec
    duration_s: float
    actions: list[Action] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    changes: int = 0

    def add_totals(self, before: dict[str, int], after: dict[str, int]) -> None:
        for k, v in after.items():
            self.totals[k] = self.totals.get(k, 0) + v - before.get(k, 0)


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (r**s) for r in range(1, n + 1)]


def generate_changes(scn: Scenario, acct: Account) -> list[Change]:
    """Poisson arrivals shaped by the diurnal profile, Zipf over the active folders, reads later."""
    rng = random.Random(scn.seed)
    a = scn.arrivals
    names = list(acct.folders)
    n_active = max(1, round(len(names) * a.active_share))
    active = rng.sample(names, n_active)
    weights = _zipf_weights(n_active, a.zipf_exponent)
    total_w = sum(a.diurnal)
    out: list[Change] = []
    days = math.ceil(scn.days)
    for d in range(days):
        for h, w in enumerate(a.diurnal):
            t0 = d * 86400 + h * 3600
            if t0 >= scn.duration_s:
                break
            n = _poisson(rng, a.messages_per_day * w / total_w)
            for _ in range(n):
                t = t0 + rng.random() * 3600
                f = rng.choices(active, weights)[0]
                out.append(Change(t, "new", f))
                if rng.random() < a.read_elsewhere_share:
                    delay = rng.expovariate(1 / a.read_delay_mean_s) if a.read_delay_mean_s else 0.0
                    out.append(Change(t + delay, "read", f))
    for kind, rate in (("create", a.folders_created_per_day), ("delete", a.folders_deleted_per_day)):
        for _ in range(_poisson(rng, rate * scn.days)):
            victim = rng.choice(names) if kind == "delete" else ""
            out.append(Change(rng.random() * scn.duration_s, kind, victim))
    return sorted((c for c in out if c.t_s < scn.duration_s), key=lambda c: c.t_s)


def _stream(seed: int, purpose: str) -> random.Random:
    """An independent, reproducible random stream for one purpose (string seeds hash with SHA-512)."""
    return random.Random(f"{seed}:{purpose}")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:  # normal approximation keeps big rates fast
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _push_list(name: str, delivers: list[float]) -> Callable[[ImapSession], list[float]]:
    def run(s: ImapSession) -> list[float]:
        s.down_raw(_list_line(name))
        return delivers

    return run


def _push_status(acct: Account, name: str) -> Callable[[ImapSession], None]:
    def run(s: ImapSession) -> None:
        s.push_status(acct.folders[name])

    return run


def _call(method: Callable[[ImapSession], None]) -> Callable[[ImapSession], None]:
    return method


TCP_RETRANSMISSIONS = 3  # before the client's dead-peer timer fires (RTO doubling from ~1 s)


def _dead_send(s: ImapSession) -> None:
    """DONE into a dropped NAT mapping: the segment and its retransmissions, never acknowledged."""
    s.counter.send("up", b"DONE\r\n")
    s.counter._pending_ack_from = None  # nobody is there to acknowledge it
    for _ in range(TCP_RETRANSMISSIONS):
        s.counter.count.add("up", "segments", 1)
        s.counter._packet("up", s.counter.count.flights[-1][1])


def _ladder(dev: Device) -> HeartbeatLadder:
    """The daemon's ladder for this device; learned on the scenario's NAT first if asked."""
    hb = dev.heartbeat or HeartbeatSection(adaptive=False)
    ladder = HeartbeatLadder(hb.ladder_settings())
    if dev.heartbeat is not None and dev.heartbeat_learned:
        learn_ladder(ladder, dev.nat_timeout_s)
    return ladder


def learn_ladder(ladder: HeartbeatLadder, nat_timeout_s: float, heartbeats: int = 60) -> int:
    """Run the ladder against a NAT until it settles (what a device does once per network);
    returns the connections lost while learning."""
    lost = 0
    t = 0.0
    for _ in range(heartbeats):
        iv = ladder.interval(t)
        t += iv
        if nat_timeout_s and iv >= nat_timeout_s:
            ladder.lost(iv, t)
            lost += 1
        else:
            ladder.survived(iv, t)
    ladder.state.since_s -= t  # learning ended at time 0: the priced day starts right after it
    return lost


def _heartbeat_s(dev: Device, ladder: HeartbeatLadder, now: float) -> float:
    if dev.heartbeat is None:
        return dev.nat_keepalive_s or math.inf
    return min(ladder.interval(now), IDLE_MAX_S)


@dataclass(slots=True)
class _Pending:
    news: list[tuple[int, bytes]] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def plan_day(
    scn: Scenario,
    spec: StrategySpec,
    *,
    wire: WireConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> DayPlan:
    """Every action of one strategy over the scenario's duration, with exact wire bytes."""
    acct = make_account(scn.folders, seed=scn.seed)
    changes = generate_changes(scn, acct)
    # Common random numbers: each source of randomness has its own stream, so every strategy of
    # a scenario sees the same message bodies, poll phase and connection losses. (One shared
    # stream let a strategy that draws once more shift every message body after it.)
    bodies_rng = _stream(scn.seed, "bodies")
    dev = scn.device
    plan = DayPlan(scn.name, spec, scn.duration_s, changes=len(changes))
    end = scn.duration_s

    q: list[tuple[float, int, str, Change | None]] = []
    seq = 0

    def push(t: float, kind: str, ch: Change | None = None) -> None:
        nonlocal seq
        if t < end:
            heapq.heappush(q, (t, seq, kind, ch))
            seq += 1

    for c in changes:
        push(c.t_s, "change", c)
    # Push re-IDLEs on the daemon's own schedule (daemon/schedule.py): the same code decides here
    # and on the device, so the price and the behaviour cannot drift apart.
    ladder = _ladder(dev)
    sched = WakeSchedule.start(0.0, heartbeat_s=_heartbeat_s(dev, ladder, 0.0), names_s=math.inf)
    reidle_seq = -1

    def plan_reidle() -> None:
        nonlocal reidle_seq
        if spec.push and (dev.heartbeat is not None or dev.nat_keepalive_s):
            reidle_seq = seq
            push(sched.next_wake(), "reidle")

    # The user's own actions (apps over MQTT), a burst per wake: each burst arrives within the
    # daemon's action window, so it goes out in one wake, or rides on a wake already under way.
    if scn.arrivals.actions_per_day > 0:
        act_rng = _stream(scn.seed, "actions")
        rate = scn.arrivals.actions_per_day / scn.arrivals.actions_per_burst / 86400
        t_act = act_rng.expovariate(rate)
        while t_act < end:
            push(t_act, "actions")
            t_act += act_rng.expovariate(rate)
    if spec.push:
        if dev.server_keepalive_s:
            push(dev.server_keepalive_s, "server_keepalive")
        plan_reidle()
        if dev.push_poll_interval_s:
            push(dev.push_poll_interval_s, "push_poll")
        t = 0.0
        loss_rng = _stream(scn.seed, "losses")
        while dev.connection_losses_per_day > 0:
            t += loss_rng.expovariate(dev.connection_losses_per_day / 86400)
            if t >= end:
                break
            push(t, "loss")
    else:
        push(_stream(scn.seed, "poll").random() * dev.poll_interval_s, "poll")
    # LIST-CHANGEDSINCE cannot report deletions: a polling client adds a names-only LIST to the
    # first poll after each scan falls due (the daemon's names_check rides on a sync run the same
    # way), so the scan costs bytes and a round trip but never a wake of its own.
    names_scan = spec.discovery.incremental and not spec.push
    scan_due = dev.deletion_scan_interval_s * _stream(scn.seed, "deletion-scan").random()

    pending: dict[str, _Pending] = {}
    deleted_pending: list[float] = []
    known_modseq = acct.modseq
    session: ImapSession | None = None
    connected = spec.push
    nat_dead = False
    last_traffic = 0.0
    sync_at: float | None = None
    if spec.push:
        session = ImapSession(wire)

    def act(
        t: float, label: str, body: Callable[[ImapSession], list[float] | None], s: ImapSession
    ) -> Action:
        before = s.counter.count.as_dict()
        i0 = len(s.counter.count.flights)
        delivered = body(s) or []
        s.counter.finish()  # the delayed-ACK timer fires before the line goes quiet
        a = Action(t, label, s.counter.count.flights[i0:], delivered)
        if s is session:
            nonlocal last_traffic
            last_traffic = t
            if dev.heartbeat is not None:
                sched.traffic(t)  # any traffic refreshes the mapping: the heartbeat moves back
                plan_reidle()
        plan.add_totals(before, s.counter.count.as_dict())
        plan.actions.append(a)
        return a

    def sync_pending(s: ImapSession) -> list[float]:
        nonlocal known_modseq
        delivered: list[float] = []
        for name, p in pending.items():
            f = acct.folders.get(name)
            if f is not None:
                s.sync_folder(f, known_modseq, p.news, p.reads)
            delivered += p.times
        s.unselect()  # as the daemon does after its folders (catch-up, and NOTIFY-driven syncs)
        pending.clear()
        known_modseq = acct.modseq
        return delivered

    def check_body(s: ImapSession) -> list[float]:
        """DONE, a discovery check and its syncs, IDLE again: a poll over the held connection."""
        s.done()
        s.discover(spec.discovery, acct.folders, list(pending), known_modseq)
        got = sync_pending(s)
        s.idle()
        return got

    if spec.push and session is not None:

        def cbody(s: ImapSession) -> list[float]:
            s.connect(compress=spec.compress)
            s.notify()
            return []

        act(0.0, "connect", cbody, session)  # the day starts with the connection the device holds
    last_progress = 0.0
    while q:
        t, seq_of_event, kind, ch = heapq.heappop(q)
        if progress is not None and t - last_progress > 3600:
            progress(t - last_progress)
            last_progress = t
        if connected and not nat_dead and dev.nat_timeout_s and t - last_traffic >= dev.nat_timeout_s:
            nat_dead = True  # the carrier NAT dropped the idle mapping; nothing reaches the device now
        alive = connected and not nat_dead
        if kind == "change":
            assert ch is not None
            name = ch.folder
            if ch.kind == "new":
                if name not in acct.folders:
                    continue
                uid = acct.new_message(name)
                peer = name if name.startswith("tel:") else "tel:+15145550199"
                raw = make_message(bodies_rng, peer, "tel:+15145550100", uid)
                p = pending.setdefault(name, _Pending())
                p.news.append((uid, raw))
                p.times.append(t)
            elif ch.kind == "read":
                if name not in acct.folders:
                    continue
                acct.mark_read(name)
                f = acct.folders[name]
                p = pending.setdefault(name, _Pending())
                p.reads.append(max(1, f.uidnext - 1 - len(p.reads)))
                p.times.append(t)
            elif ch.kind == "create":
                name = acct.create()
                pending.setdefault(name, _Pending()).times.append(t)
            else:
                if name not in acct.folders:
                    continue
                acct.delete(name)
                pending.pop(name, None)
                if not (spec.push and alive):
                    if spec.discovery.incremental and not spec.push:
                        deleted_pending.append(t)
                    else:
                        pending.setdefault(name, _Pending()).times.append(t)
            if spec.push and alive and session is not None:
                s = session
                if ch.kind in ("create", "delete"):
                    act(t, "push-list", _push_list(name, [t] if ch.kind == "delete" else []), s)
                else:
                    act(t, "push-status", _push_status(acct, name), s)
                if pending and sync_at is None:
                    sync_at = t + dev.debounce_ms / 1000
                    push(sync_at, "sync")
        elif kind == "sync":
            sync_at = None
            if alive and session is not None and pending:

                def body(s: ImapSession) -> list[float]:
                    s.done()
                    got = sync_pending(s)
                    s.idle()
                    return got

                act(t, "sync", body, session)
        elif kind == "server_keepalive":
            if alive and session is not None:
                act(t, "server-keepalive", _call(ImapSession.server_keepalive), session)
            push(t + dev.server_keepalive_s, "server_keepalive")
        elif kind == "reidle":
            if dev.heartbeat is None:
                if alive and session is not None:
                    act(t, "reidle", _call(ImapSession.reidle), session)
                elif connected and session is not None:
                    # the NAT mapping is gone: DONE and its retransmissions go unanswered until the
                    # client gives up on the peer and reconnects
                    act(t, "reidle-dead", _dead_send, session)
                    connected, nat_dead, session = False, False, None
                    push(t + dev.dead_peer_timeout_s, "reconnect")
                push(t + dev.nat_keepalive_s, "reidle")
            elif seq_of_event == reidle_seq and connected and session is not None:
                idle_s = t - sched.last_traffic
                if alive:
                    ladder.survived(idle_s, t)
                    sched.set_heartbeat(_heartbeat_s(dev, ladder, t))
                    if dev.push_check_on_heartbeat:  # rides on the heartbeat's wake
                        act(t, "reidle+check", check_body, session)
                    else:
                        act(t, "reidle", _call(ImapSession.reidle), session)
                else:
                    ladder.lost(idle_s, t)
                    sched.set_heartbeat(_heartbeat_s(dev, ladder, t))
                    act(t, "reidle-dead", _dead_send, session)
                    connected, nat_dead, session = False, False, None
                    push(t + dev.heartbeat.reply_timeout_s, "reconnect")
        elif kind == "actions":
            n = scn.arrivals.actions_per_burst
            target = next(iter(acct.folders), "")
            uids = list(range(1, n + 1))

            def abody(
                s: ImapSession, fresh: bool, target: str = target, uids: list[int] = uids
            ) -> list[float]:
                if fresh:
                    s.connect(compress=spec.compress)
                else:
                    s.done()
                s.apply_actions(target, uids, acct.modseq)
                if fresh:
                    s.logout()
                else:
                    s.idle()
                return []

            if alive and session is not None:
                act(t, "actions", partial(abody, fresh=False), session)
            elif not spec.push:  # a polling client opens a connection for them
                act(t, "actions", partial(abody, fresh=True), ImapSession(wire))
            # push with the link down: they wait in the queue for the reconnect's wake
        elif kind == "push_poll":
            if alive and session is not None:
                act(t, "push-poll", check_body, session)
            push(t + dev.push_poll_interval_s, "push_poll")
        elif kind == "loss":
            if connected:
                connected, nat_dead = False, False
                session = None
                push(t + dev.reconnect_delay_s, "reconnect")
        elif kind == "reconnect":
            session = ImapSession(wire)
            connected = True

            def rbody(s: ImapSession) -> list[float]:
                s.connect(compress=spec.compress)
                s.discover(spec.discovery, acct.folders, list(pending), known_modseq)
                got = sync_pending(s)
                s.notify()
                return got

            act(t, "reconnect", rbody, session)
            if dev.heartbeat is not None:
                sched.traffic(t)
                plan_reidle()
        elif kind == "poll":
            scan = names_scan and t >= scan_due
            if scan:
                while scan_due <= t:
                    scan_due += dev.deletion_scan_interval_s

            def pbody(s: ImapSession, scan: bool = scan) -> list[float]:
                s.connect(compress=spec.compress)
                s.discover(spec.discovery, acct.folders, list(pending), known_modseq)
                got = sync_pending(s)
                if scan:
                    imap = _imap()
                    tag = s.tag()
                    s.up(imap.ListCommand(tag=tag, reference="", patterns=("*",)))
                    s.down_raw(b"".join(_list_line(n) for n in acct.folders))
                    s.down(s.ok(tag, "List completed."))
                    got += deleted_pending
                    deleted_pending.clear()
                s.logout()
                return got

            act(t, "poll+deletion-scan" if scan else "poll", pbody, ImapSession(wire))
            push(t + dev.poll_interval_s, "poll")
    if progress is not None:
        progress(max(0.0, end - last_progress))
    return plan


@dataclass(slots=True)
class RadioPlan:
    transfers: list[Transfer]
    mean_delay_s: float
    delivered: int
    delays_s: list[float] = field(default_factory=list)

    def delay_quantile(self, q: float) -> float:
        """The q-quantile of change -> delivery delays (nearest rank); 0 when nothing was delivered."""
        if not self.delays_s:
            return 0.0
        ordered = sorted(self.delays_s)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def plan_transfers(plan: DayPlan, profile: RadioProfile) -> RadioPlan:
    """Lay the plan's flights on the radio: one-way delay at each change of direction, link-rate durations.

    The delivery delay of a change runs to the end of the action that delivered it, plus the
    promotion (and, for a downlink-first action, half a paging cycle) when the radio was idle.
    """
    tm = profile.transfer
    half_rtt = tm.rtt_ms / 2000
    idle = profile.idle
    wake_s = (idle.promotion_ms or 0.0) / 1000
    paging_s = (idle.drx_cycle_ms or 0.0) / 2000
    out: list[Transfer] = []
    delays: list[float] = []
    last_end = -1e18
    for a in plan.actions:
        cur = max(a.t_s, last_end)
        woke = a.t_s - last_end > profile.tail_s
        if woke and a.flights:
            cur += wake_s + (paging_s if a.flights[0][0] == "down" else 0.0)
        prev: str | None = None
        for direction, n in a.flights:
            if prev is not None and direction != prev:
                cur += half_rtt
            out.append(Transfer(cur, direction, n))
            cur += tm.duration_s(direction, n)
            prev = direction
        last_end = cur
        delays += [cur - t for t in a.delivers]
    mean = sum(delays) / len(delays) if delays else 0.0
    return RadioPlan(out, mean, len(delays), delays)
