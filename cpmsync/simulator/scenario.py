"""Scenario files: who the user is (folders, traffic) and how the device syncs (push, polling).

Scenarios are TOML data so a standards group can argue with the inputs, not the code.
Shipped ones live in cpmsync/simulator/scenarios/ (config/scenarios/ links to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cpmsync.config import model_from, read_toml, shipped_or_path
from cpmsync.daemon.settings import HeartbeatSection
from cpmsync.simulator.catchup import STRATEGIES, Strategy

__all__ = [
    "Arrivals",
    "Device",
    "Scenario",
    "StrategySpec",
    "all_strategy_specs",
    "builtin_scenario_names",
    "load_scenario",
]

# Hourly weights of message arrivals over a day, midnight first: a typical messaging diurnal
# shape (night trough around 4-5 am, evening peak). Normalised at use.
DEFAULT_DIURNAL: tuple[float, ...] = (
    0.35, 0.2, 0.12, 0.08, 0.07, 0.1, 0.3, 0.7, 1.0, 1.1, 1.15, 1.2,
    1.3, 1.25, 1.15, 1.1, 1.15, 1.3, 1.5, 1.6, 1.6, 1.4, 1.0, 0.6,
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arrivals(_Model):
    """Changes made on the server by others: new messages, reads on another device, folders."""

    messages_per_day: float = Field(ge=0)
    diurnal: tuple[float, ...] = DEFAULT_DIURNAL
    active_share: float = Field(default=0.05, gt=0, le=1)
    zipf_exponent: float = Field(default=1.0, ge=0)
    read_elsewhere_share: float = Field(default=0.5, ge=0, le=1)
    read_delay_mean_s: float = Field(default=600.0, ge=0)
    folders_created_per_day: float = Field(default=0.0, ge=0)
    folders_deleted_per_day: float = Field(default=0.0, ge=0)
    # The user's own actions on this device (apps over MQTT: mark read, delete...), in bursts of
    # `actions_per_burst` that arrive within the daemon's action window: one wake per burst.
    actions_per_day: float = Field(default=0.0, ge=0)
    actions_per_burst: int = Field(default=1, ge=1)

    @field_validator("diurnal")
    @classmethod
    def _24(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 24 or any(x < 0 for x in v) or sum(v) <= 0:
            raise ValueError("diurnal needs 24 non-negative hourly weights, not all zero")
        return v


class Device(_Model):
    """How the device keeps in sync; every interval carries its unit."""

    poll_interval_s: float = Field(default=900.0, gt=0)
    nat_keepalive_s: float = Field(default=1740.0, ge=0)  # client re-IDLE (RFC 2177: <= 29 min); 0 = never
    server_keepalive_s: float = Field(default=120.0, ge=0)  # Dovecot imap_idle_notify_interval; 0 = never
    nat_timeout_s: float = Field(default=600.0, ge=0)  # carrier NATs drop idle TCP after 5-15 min; 0 = no NAT
    dead_peer_timeout_s: float = Field(default=30.0, ge=0)  # unanswered send -> give up and reconnect
    connection_losses_per_day: float = Field(default=6.0, ge=0)
    reconnect_delay_s: float = Field(default=5.0, ge=0)
    debounce_ms: float = Field(default=2000.0, ge=0)
    deletion_scan_interval_s: float = Field(
        default=86400.0, gt=0
    )  # LIST-CHANGEDSINCE cannot report deletions
    # The daemon's own heartbeat (daemon/schedule.py, [heartbeat] in daemon.toml): with it, push
    # re-IDLEs as the daemon does (counted from the last traffic, learned per network); without it,
    # a fixed re-IDLE every nat_keepalive_s, as most clients do.
    heartbeat: HeartbeatSection | None = None
    # Start with what the daemon learned on this network already (its steady state), not from scratch.
    heartbeat_learned: bool = True
    # Discovery poll over the held connection while pushing (the daemon's notify_poll_interval_s); 0 = none.
    push_poll_interval_s: float = Field(default=0.0, ge=0)
    # A discovery check on every heartbeat (the daemon's notify_check_on_heartbeat): bytes, no wake.
    push_check_on_heartbeat: bool = False


class Scenario(_Model):
    name: str
    description: str = ""
    folders: int = Field(ge=1, le=1_000_000)
    days: float = Field(default=1.0, gt=0, le=30)
    seed: int = 1
    arrivals: Arrivals
    device: Device = Device()

    @property
    def duration_s(self) -> float:
        return self.days * 86400


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """One way of syncing: folder discovery strategy, COMPRESS=DEFLATE or not, push or polling."""

    discovery: Strategy
    compress: bool
    push: bool

    @property
    def label(self) -> str:
        return self.discovery + ("+deflate" if self.compress else "") + ("+push" if self.push else "+poll")


def all_strategy_specs() -> list[StrategySpec]:
    return [StrategySpec(d, c, p) for p in (False, True) for c in (False, True) for d in STRATEGIES]


def _scenarios_dir() -> Path:
    return Path(str(resources.files("cpmsync.simulator") / "scenarios"))


def builtin_scenario_names() -> list[str]:
    return sorted(p.stem for p in _scenarios_dir().glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (`light`, `heavy-group-chat`, `archive`) or a TOML file by path."""
    path = shipped_or_path(name_or_path, _scenarios_dir(), "scenario")
    return model_from(Scenario, read_toml(path, "scenario"), path)
