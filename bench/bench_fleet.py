"""Fleet benchmark: closed-form radio energy of 1,000,000 varied device-days, every strategy on each.

Run from the repo root: `python bench/bench_fleet.py [--devices N] [--radio lte]`.
Prints the generation time, the model time, device-days per second and the total, plus a
per-strategy summary. Every strategy is evaluated on the same device-days (common random
numbers), so rows differ by strategy only. Target (issue 5): 1,000,000 device-days in under
60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time

from cpmsync.simulator.fleet import event_costs, fleet_energy_by_strategy, make_fleet
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import BATTERY_J, idle_floor_j


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
    results = fleet_energy_by_strategy(fleet, profile)
    t3 = time.perf_counter()
    total = t3 - t0
    n, k = args.devices, len(fleet.specs)
    print(f"cpus: {os.cpu_count()}  radio: {profile.name}  device-days: {n:,}  strategies each: {k}")
    print(f"generate fleet:        {t1 - t0:8.2f} s")
    print(f"byte model (codec):    {t2 - t1:8.2f} s")
    print(
        f"closed-form energy:    {t3 - t2:8.2f} s  ({n / (t3 - t2):,.0f} device-days/s, "
        f"{n * k / (t3 - t2):,.0f} strategy-device-days/s)"
    )
    print(f"total:                 {total:8.2f} s  ({n / total:,.0f} device-days/s end to end)")
    floor = idle_floor_j(profile, 86400.0)
    print(f"idle floor:            {floor:8,.0f} J/day (paging only; the same for every strategy)")
    print()
    print(
        f"{'strategy':36s} {'mean J/day':>11s} {'sync J/day':>11s} {'% battery':>10s} "
        f"{'MB down/day':>12s} {'wakes/day':>10s}"
    )
    for spec, res in zip(fleet.specs, results, strict=True):
        e = res.energy_j.mean()
        print(
            f"{spec.label:36s} {e:11,.0f} {e - floor:11,.1f} {100 * e / BATTERY_J:10.2f} "
            f"{res.bytes_down.mean() / 1e6:12,.2f} {res.wakes.mean():10,.0f}"
        )


if __name__ == "__main__":
    main()
