"""Validate `simulate schedule` against the real daemon: same settings, measured vs predicted.

The real daemon (a subprocess, [trace] on) holds a session with msgstore through the fault proxy,
which plays a carrier NAT that silently drops mappings idle for `--nat` seconds. Time is scaled
by `--scale` (default 1/60: one real second stands for one minute): every interval of the
daemon's [heartbeat] settings and the NAT timeout are multiplied by it, and the recorded trace's
times are divided by it before pricing, so the radio sees the unscaled day. The daemon starts on
a network it has never seen, so the ladder's learning (and its lost connections) is inside the
measured time; so it is in the prediction (`learned=False`).

The trace is exported with `cpmsync daemon stats --trace-csv` and priced with `cpmsync simulate
trace`; the prediction is `price_schedule` (what `cpmsync simulate schedule` runs) for the same
unscaled settings, duration, NAT and no changes. Prints wakes and sync energy (above the idle
floor) side by side and their ratio (goal: within 5 %).

    python bench/bench_schedule_validation.py [--seconds 300] [--scale 0.0166667] [--nat 600]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpmsync.daemon.settings import DaemonSettings
from cpmsync.simulator.radio import load_profile
from cpmsync.simulator.runner import idle_floor_j
from cpmsync.simulator.schedule_price import ScheduleSpec, price_schedule
from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings
from tests.support import FaultProxy, MosquittoBroker


def _config(path: Path, proxy: FaultProxy, mqtt_port: int, cache: Path, scale: float) -> None:
    hb = DaemonSettings().heartbeat
    keepalive = DaemonSettings().imap.keepalive_s
    path.write_text(
        f"""
[account]
id = "validation"
[imap]
host = "{proxy.host}"
port = {proxy.port}
tls = "none"
username = "alice"
keepalive_s = {keepalive * scale}
reconnect_min_s = 0.01
reconnect_max_s = 0.01
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
[cache]
path = "{cache}"
[trace]
enabled = true
[heartbeat]
initial_s = {hb.initial_s * scale}
min_s = {hb.min_s * scale}
max_s = {hb.max_s * scale}
step_s = {hb.step_s * scale}
reprobe_after_s = {hb.reprobe_after_s * scale}
reply_timeout_s = {hb.reply_timeout_s * scale}
network_id = "validation"
"""
    )


def _price_trace(csv_path: Path, scale: float, until: float) -> dict[str, float]:
    """Price the trace on LTE with its times unscaled; rows from the shutdown (LOGOUT) on are left
    out, as the predicted day has no end."""
    rows = list(csv.reader(csv_path.open()))
    scaled = csv_path.with_suffix(".unscaled.csv")
    with scaled.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        for t, d, n in rows[1:]:
            if float(t) < until:
                w.writerow([float(t) / scale, d, n])
    out = subprocess.run(
        [sys.executable, "-m", "cpmsync.cli", "simulate", "trace", str(scaled), "--radio", "lte", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    priced = json.loads(out.stdout)[0]
    return {
        "wakes": priced["radio_wakes"],
        "energy_j": priced["energy_j"],
        "duration_s": priced["duration_s"],
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0, help="real run time")
    ap.add_argument("--scale", type=float, default=1 / 60, help="real seconds per simulated second")
    ap.add_argument("--nat", type=float, default=600.0, help="NAT idle timeout, simulated seconds")
    ap.add_argument("--keep", type=Path, default=None, help="copy the traces (scaled and not) here")
    args = ap.parse_args()
    scale = args.scale
    with (
        tempfile.TemporaryDirectory() as tmp,
        ThreadServer(make_settings()) as srv,
        MosquittoBroker() as broker,
    ):
        tmpd = Path(tmp)
        proxy = await FaultProxy("127.0.0.1", srv.port).start()
        proxy.nat_idle_timeout_s = args.nat * scale
        conf = tmpd / "daemon.toml"
        _config(conf, proxy, broker.port, tmpd / "cache.sqlite", scale)
        env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=USERS["alice"])
        cmd = [
            sys.executable,
            "-m",
            "cpmsync.cli",
            "--log-level",
            "warning",
            "daemon",
            "run",
            "--config",
            str(conf),
        ]
        proc = await asyncio.create_subprocess_exec(*cmd, env=env)
        try:
            await asyncio.sleep(args.seconds)
        finally:
            stopped_at = time.time()
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            await proxy.aclose()
        trace_csv = tmpd / "trace.csv"
        await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "cpmsync.cli",
                "daemon",
                "stats",
                "--config",
                str(conf),
                "--trace-csv",
                str(trace_csv),
            ],
            check=True,
            env=env,
        )
        measured = _price_trace(trace_csv, scale, stopped_at)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for f in (trace_csv, trace_csv.with_suffix(".unscaled.csv")):
                (args.keep / f.name).write_bytes(f.read_bytes())
    lte = load_profile("lte")
    sim_s = args.seconds / scale
    (predicted,) = price_schedule(
        ScheduleSpec("daemon", settings=DaemonSettings()),
        [lte],
        nat_timeout_s=args.nat,
        changes_per_day=0.0,
        folders=1,
        connection_losses_per_day=0.0,
        duration_s=sim_s,
        learned=False,
    )
    days = sim_s / 86400
    m_sync = measured["energy_j"] - idle_floor_j(lte, measured["duration_s"])
    p_wakes = predicted.wakes_per_day * days
    p_sync = predicted.sync_joules_per_day * days
    hours = sim_s / 3600
    print(f"real {args.seconds:g} s at scale {scale:.4g} = {hours:.2f} h simulated; NAT {args.nat:g} s; LTE")
    print(f"{'':24}{'measured':>12}{'predicted':>12}{'ratio':>8}")
    print(
        f"{'radio wakes':24}{measured['wakes']:>12,.0f}{p_wakes:>12,.1f}{measured['wakes'] / p_wakes:>8.3f}"
    )
    print(f"{'sync energy J':24}{m_sync:>12,.1f}{p_sync:>12,.1f}{m_sync / p_sync:>8.3f}")
    print(f"NAT mappings dropped by the proxy: {proxy.nat_drops}; learned heartbeat {predicted.heartbeat_s}")


if __name__ == "__main__":
    asyncio.run(main())
