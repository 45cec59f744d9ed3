"""Radio profiles: the sourced numbers of one access technology, loaded from a TOML file.

A profile is data, not code, so an operator can price their own network by copying a file.
The state machine in `rrc.py` is generic: after the last packet the radio walks through
`phases` in order (each with a timer and an average power); a packet arriving in a phase that
has a `promotion_ms` first pays that promotion (RRC setup, FACH->DCH, RRC resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cpmsync.config import ConfigError, model_from, read_toml, shipped_or_path

__all__ = [
    "Phase",
    "RadioProfile",
    "Transfer",
    "builtin_profile_names",
    "load_profile",
]

RADIO_ALIASES: dict[str, str] = {"nr": "nr-nsa", "5g": "nr-nsa", "4g": "lte", "umts": "3g"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransferModel(_Model):
    """Power while moving data: P = alpha_up*thr_up + alpha_down*thr_down + beta (Huang et al.)."""

    alpha_up_mw_per_mbps: float = Field(ge=0)
    alpha_down_mw_per_mbps: float = Field(ge=0)
    beta_up_mw: float = Field(ge=0)
    beta_down_mw: float = Field(ge=0)
    uplink_mbps: float = Field(gt=0)
    downlink_mbps: float = Field(gt=0)
    rtt_ms: float = Field(ge=0)

    def power_mw(self, direction: str) -> float:
        """Power while sending (up) or receiving (down) at the profile's link rate."""
        if direction == "up":
            return self.alpha_up_mw_per_mbps * self.uplink_mbps + self.beta_up_mw
        return self.alpha_down_mw_per_mbps * self.downlink_mbps + self.beta_down_mw

    def duration_s(self, direction: str, nbytes: int) -> float:
        rate = self.uplink_mbps if direction == "up" else self.downlink_mbps
        return nbytes * 8 / (rate * 1e6)


class Phase(_Model):
    """One state the radio sits in after activity; `duration_ms` None means it lasts until the next packet."""

    state: str
    duration_ms: float | None = Field(default=None, ge=0)
    power_mw: float = Field(default=0.0, ge=0)
    drx_cycle_ms: float | None = Field(default=None, gt=0)
    drx_on_ms: float = Field(default=0.0, ge=0)
    drx_on_power_mw: float = Field(default=0.0, ge=0)
    drx_transition_uj: float = Field(default=0.0, ge=0)
    radio_on: bool = True
    promotion_ms: float | None = Field(default=None, ge=0)
    promotion_mw: float = Field(default=0.0, ge=0)
    fach_threshold_up_bytes: int | None = Field(default=None, ge=0)
    fach_threshold_down_bytes: int | None = Field(default=None, ge=0)
    fach_uplink_kbps: float | None = Field(default=None, gt=0)
    fach_downlink_kbps: float | None = Field(default=None, gt=0)

    @property
    def average_mw(self) -> float:
        """Mean power over a DRX cycle: base, plus on-duration excess, plus sleep transitions."""
        if self.drx_cycle_ms is None:
            return self.power_mw
        on = min(self.drx_on_ms, self.drx_cycle_ms)
        excess = (self.drx_on_power_mw - self.power_mw) * on + self.drx_transition_uj
        return self.power_mw + excess / self.drx_cycle_ms

    @property
    def needs_promotion(self) -> bool:
        return self.promotion_ms is not None


class RadioProfile(_Model):
    """A radio technology's timers and powers, every number cited in its TOML file."""

    name: str
    technology: str
    description: str = ""
    sources: tuple[str, ...] = ()
    mw_per_unit: float | None = Field(default=None, gt=0)
    transfer: TransferModel
    phases: tuple[Phase, ...] = Field(min_length=1)

    def model_post_init(self, __context: Any) -> None:
        last = self.phases[-1]
        if last.duration_ms is not None:
            raise ValueError(f"profile {self.name}: the last phase ({last.state}) must have no duration_ms")
        if not last.needs_promotion:
            raise ValueError(f"profile {self.name}: the last phase ({last.state}) needs promotion_ms")
        for p in self.phases[:-1]:
            if p.duration_ms is None:
                raise ValueError(f"profile {self.name}: phase {p.state} needs duration_ms")
        if self.phases[0].needs_promotion:
            raise ValueError(f"profile {self.name}: the first phase must be a connected state")

    @property
    def tail_s(self) -> float:
        """Time from the last packet until the radio reaches a state that needs a promotion."""
        t = 0.0
        for p in self.phases:
            if p.needs_promotion:
                break
            t += (p.duration_ms or 0.0) / 1000
        return t

    @property
    def connected_s(self) -> float:
        """Time from the last packet until the radio leaves its last radio-on state (3G: DCH + FACH)."""
        t = 0.0
        for p in self.phases:
            if not p.radio_on:
                break
            t += (p.duration_ms or 0.0) / 1000
        return t

    @property
    def idle(self) -> Phase:
        return self.phases[-1]


def _apply_units(obj: Any, mw_per_unit: float | None, where: str) -> Any:
    """Turn `*_units` keys (TR 38.840 relative power) into mW and add them to the `*_mw` sibling."""
    if isinstance(obj, list):
        return [_apply_units(x, mw_per_unit, where) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out[k] = _apply_units(v, mw_per_unit, where)
    for k in [k for k in out if k.endswith("_units") or k.endswith("_units_ms")]:
        if mw_per_unit is None:
            raise ConfigError(f"{where}: key {k!r} needs a top-level mw_per_unit calibration")
        v = out.pop(k)
        if k.endswith("_units_ms"):  # energy: units*ms -> mW*ms = µJ
            target = k.removesuffix("_units_ms") + "_uj"
        else:
            target = k.removesuffix("_units") + "_mw"
        out[target] = out.get(target, 0.0) + float(v) * mw_per_unit
    return out


def _profiles_dir() -> Path:
    return Path(str(resources.files("cpmsync.simulator") / "profiles"))


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped with the package (cpmsync/simulator/profiles/*.toml)."""
    return sorted(p.stem for p in _profiles_dir().glob("*.toml"))


def load_profile(name_or_path: str | Path) -> RadioProfile:
    """Load a shipped profile by name (`lte`, `3g-aro`, alias `nr`) or any TOML file by path."""
    s = str(name_or_path)
    if not (Path(s).suffix == ".toml" or Path(s).exists()):
        s = RADIO_ALIASES.get(s.lower(), s.lower())
    path = shipped_or_path(s, _profiles_dir(), "radio profile")
    data = read_toml(path, "radio profile")
    return model_from(RadioProfile, _apply_units(data, data.get("mw_per_unit"), str(path)), path)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One burst of bytes on the air interface: the unit a trace and the state machine speak."""

    t_s: float
    direction: str  # "up" (device -> network) or "down"
    nbytes: int
