"""Price one day of the daemon's wake schedule as configured (or of a polling client).

The day is planned by the same code as `simulate run` (workload.plan_day), and its push branch
re-IDLEs through the daemon's own `daemon/schedule.py`: the heartbeat ladder, the wake alignment,
the debounce, the NOTIFY safety poll, all read from a daemon.toml. So what `simulate schedule`
prices is what the daemon would do on that network, not a separate model of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.schedule import HeartbeatLadder
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.simulator.catchup import Strategy
from cpmsync.simulator.radio import RadioProfile
from cpmsync.simulator.rrc import simulate_radio
from cpmsync.simulator.runner import BATTERY_J, idle_floor_j
from cpmsync.simulator.scenario import Arrivals, Device, Scenario, StrategySpec
from cpmsync.simulator.workload import learn_ladder, plan_day, plan_transfers

__all__ = ["SchedulePrice", "ScheduleSpec", "daemon_device", "price_schedule"]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What is priced: the daemon with these settings, or a client polling every `poll_s`."""

    label: str
    settings: DaemonSettings | None = None  # the daemon (push); None with poll_s
    poll_s: float | None = None
    server_keepalive_s: float = 0.0  # the server's own IDLE keep-alive (Dovecot: 120 s; msgstore: off)
    fixed_heartbeat_s: float | None = None  # push with a fixed client re-IDLE instead of the ladder


@dataclass(frozen=True, slots=True)
class SchedulePrice:
    label: str
    radio: str
    nat_timeout_s: float
    changes_per_day: float
    folders: int
    discovery: str
    wakes_per_day: float
    joules_per_day: float
    sync_joules_per_day: float  # above the idle floor every configuration pays
    battery_pct_per_day: float
    median_delay_s: float
    p95_delay_s: float
    wire_bytes_per_day: float
    heartbeat_s: float | None  # the interval the daemon settles on (None: polling / fixed)
    learning_losses: int  # connections lost once while the ladder learns a new network

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def daemon_device(settings: DaemonSettings, *, nat_timeout_s: float, server_keepalive_s: float) -> Device:
    """The simulator's device as the daemon with `settings` behaves."""
    imap = settings.imap
    hb = settings.heartbeat
    cap = min(hb.max_s, imap.keepalive_s)
    heartbeat = hb.model_copy(update={"max_s": cap, "initial_s": min(hb.initial_s, cap)})
    return Device(
        nat_timeout_s=nat_timeout_s,
        server_keepalive_s=server_keepalive_s,
        debounce_ms=float(imap.debounce_ms),
        heartbeat=heartbeat,
        push_poll_interval_s=imap.notify_poll_interval_s,
        push_check_on_heartbeat=imap.notify_check_on_heartbeat,
        dead_peer_timeout_s=hb.reply_timeout_s,
    )


def price_schedule(
    spec: ScheduleSpec,
    profiles: Sequence[RadioProfile],
    *,
    nat_timeout_s: float,
    changes_per_day: float,
    folders: int = 1000,
    discovery: Strategy = DiscoveryStrategy.LIST_CHANGEDSINCE,
    connection_losses_per_day: float = 6.0,
    actions_per_day: float = 0.0,
    actions_per_burst: int = 1,
    seed: int = 1,
    duration_s: float = 86400.0,
    learned: bool = True,
) -> list[SchedulePrice]:
    """The same day on several radios: the bytes and their timing do not depend on the radio.

    `learned=False` starts the daemon's ladder from scratch (a network never seen), so the
    losses of learning are inside the priced time; `duration_s` prices less or more than a day
    (per-day figures are scaled to a day either way)."""
    learning = 0
    heartbeat_s: float | None = None
    if spec.poll_s is not None:
        device = Device(poll_interval_s=spec.poll_s, nat_timeout_s=nat_timeout_s)
        push = False
    elif spec.fixed_heartbeat_s is not None or spec.settings is None:
        device = Device(
            nat_keepalive_s=spec.fixed_heartbeat_s or 0.0,
            server_keepalive_s=spec.server_keepalive_s,
            nat_timeout_s=nat_timeout_s,
        )
        push = True
    else:
        device = daemon_device(
            spec.settings, nat_timeout_s=nat_timeout_s, server_keepalive_s=spec.server_keepalive_s
        )
        push = True
        device = device.model_copy(update={"heartbeat_learned": learned})
        if device.heartbeat is not None and device.heartbeat.adaptive and learned:
            ladder = HeartbeatLadder(device.heartbeat.ladder_settings())
            learning = learn_ladder(ladder, nat_timeout_s)
            heartbeat_s = ladder.interval(0.0)
        elif device.heartbeat is not None and not device.heartbeat.adaptive:
            heartbeat_s = device.heartbeat.initial_s
    device = device.model_copy(update={"connection_losses_per_day": connection_losses_per_day})
    scn = Scenario(
        name=spec.label,
        folders=folders,
        seed=seed,
        days=duration_s / 86400.0,
        arrivals=Arrivals(
            messages_per_day=changes_per_day,
            read_elsewhere_share=0.0,
            folders_created_per_day=0.0,
            actions_per_day=actions_per_day,
            actions_per_burst=actions_per_burst,
        ),
        device=device,
    )
    plan = plan_day(scn, StrategySpec(discovery, True, push))
    t = plan.totals
    out = []
    for profile in profiles:
        rp = plan_transfers(plan, profile)
        r = simulate_radio(profile, rp.transfers, end_s=plan.duration_s)
        out.append(
            SchedulePrice(
                label=spec.label,
                radio=profile.name,
                nat_timeout_s=nat_timeout_s,
                changes_per_day=changes_per_day,
                folders=folders,
                discovery=discovery,
                wakes_per_day=r.wakes / scn.days,
                joules_per_day=r.energy_j / scn.days,
                sync_joules_per_day=(r.energy_j - idle_floor_j(profile, plan.duration_s)) / scn.days,
                battery_pct_per_day=100 * r.energy_j / scn.days / BATTERY_J,
                median_delay_s=rp.delay_quantile(0.5),
                p95_delay_s=rp.delay_quantile(0.95),
                wire_bytes_per_day=(t.get("wire_up", 0) + t.get("wire_down", 0)) / scn.days,
                heartbeat_s=heartbeat_s,
                learning_losses=learning,
            )
        )
    return out
