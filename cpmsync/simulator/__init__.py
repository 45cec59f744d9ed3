"""The radio-energy simulator: UNI bytes and device energy of each IMAP sync strategy.

Public names load lazily so `cpmsync --help` does not import numpy or the codec:

- `predict_catchup_bytes(folder_names, statuses, changed, strategy, compress, *, last_modseq=0,
  wire=None, connect=True, fetch_changed=False, logout=False, list_attributes=None,
  server_style="cpmsync", status_items=..., pipelined=True, new_messages=None, flag_changes=None,
  known_modseqs=None, preview_bytes=256, setup=None) -> WireCount`: bytes of one catch-up sync
  for an exact account shape (with `fetch_changed`, the daemon's EXAMINE/FETCH/UNSELECT per folder).
- `load_profile`, `simulate_radio`, `Transfer`: cost a transfer timeline on a radio profile.
- `load_scenario`, `run_scenario`: scenario x strategy x radio tables.
- `make_fleet`, `fleet_energy`: the closed-form, vectorised fleet model.
- `load_trace`: read a (t_s, direction, bytes) trace as the daemon writes it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Transfer",
    "WireConfig",
    "WireCount",
    "fleet_energy",
    "load_profile",
    "load_scenario",
    "load_trace",
    "make_fleet",
    "predict_catchup_bytes",
    "run_scenario",
    "simulate_radio",
]

_HOME = {
    "Transfer": "radio",
    "load_profile": "radio",
    "WireConfig": "wire",
    "WireCount": "wire",
    "predict_catchup_bytes": "catchup",
    "simulate_radio": "rrc",
    "load_scenario": "scenario",
    "run_scenario": "runner",
    "make_fleet": "fleet",
    "fleet_energy": "fleet",
    "load_trace": "trace",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"cpmsync.simulator.{_HOME[name]}"), name)
    raise AttributeError(f"module 'cpmsync.simulator' has no attribute {name!r}")
