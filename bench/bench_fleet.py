"""Fleet benchmark: closed-form radio energy of 1,000,000 varied device-days.

Run from the repo root: `python bench/bench_fleet.py [--devices N] [--radio lte]`.
Prints the generation time, the model time, device-days per second and the total, plus a
per-strategy summary. Target (issue 5): 1,000,000 device-days in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time

from cpmsync.simulator.fleet import event_costs, fleet_energy, make_fleet
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import BATTERY_J


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--radio", default="lte")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    profile = load_profile(args.radio)
    t0 = time.perf_counter()
    fleet = make_fleet(args.devices, seed=args.seed)
    t1 = time.perf_counter()
    for spec in fleet.specs:  # per-burst bytes from the codec-built byte model (cached)
        event_costs(spec)
    t2 = time.perf_counter()
    res = fleet_energy(fleet, profile)
    t3 = time.perf_counter()
    total = t3 - t0
    print(f"cpus: {os.cpu_count()}  radio: {profile.name}  device-days: {args.devices:,}")
    print(f"generate fleet:        {t1 - t0:8.2f} s")
    print(f"byte model (codec):    {t2 - t1:8.2f} s")
    print(f"closed-form energy:    {t3 - t2:8.2f} s  ({args.devices / (t3 - t2):,.0f} device-days/s)")
    print(f"total:                 {total:8.2f} s  ({args.devices / total:,.0f} device-days/s end to end)")
    print(
        f"fleet mean energy:     {res.energy_j.mean():,.0f} J/day "
        f"({100 * res.energy_j.mean() / BATTERY_J:.2f} % battery)"
    )
    print()
    print(
        f"{'strategy':36s} {'devices':>9s} {'mean J/day':>13s} "
        f"{'mean MB down/day':>17s} {'mean wakes/day':>15s}"
    )
    for i, spec in enumerate(fleet.specs):
        m = fleet.strategy == i
        print(
            f"{spec.label:36s} {int(m.sum()):9,d} {res.energy_j[m].mean():13,.0f} "
            f"{res.bytes_down[m].mean() / 1e6:17,.2f} {res.wakes[m].mean():15,.0f}"
        )


if __name__ == "__main__":
    main()
