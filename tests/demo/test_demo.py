"""`cpmsync demo` end to end, run as a newcomer would: a subprocess with real parts only
(the msgstore, the daemon, a subscriber and a change generator in one process; a private Mosquitto
from tests/support stands for the broker the user runs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import psutil
import pytest

from tests.support import MosquittoBroker, cli_command, free_port, run_cli

pytestmark = pytest.mark.slow

WIDE = {"COLUMNS": "200"}  # rich wraps at 80 columns in a pipe; keep each line whole for the regexes
RUN_TIMEOUT_S = 110.0
MARKER_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def _data_dir(output: str) -> Path:
    m = re.search(r"^data dir (\S+)", output, re.M)
    assert m, output
    return Path(m.group(1))


def test_demo_events_arrive_and_changedsince_is_cheapest(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    args = ["demo", "--duration", "10", "--folders", "200"]
    args += ["--broker", f"{mqtt_broker.host}:{mqtt_broker.port}", "--json-summary", str(summary_path)]
    r = run_cli(args, env=WIDE, timeout_s=RUN_TIMEOUT_S)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]

    m = re.search(r"events received by the app: ([\d,]+) \(([\d,]+) after the first sync", r.stdout)
    assert m, out[-5000:]
    live = int(m.group(2).replace(",", ""))
    assert live > 0  # the change generator's changes reached the app over MQTT
    assert re.search(r"^app\s+message_added", r.stdout, re.M)  # shown as they arrived
    assert re.search(r"^sync\s+#\d+\s+notify", r.stdout, re.M)  # each sync with strategy and bytes

    # CPM senders are tel: URIs, shown whole (not split as "tel, +1514...")
    assert re.search(r"^app\s+message_added .* tel:\+\d+: ", r.stdout, re.M), out[-5000:]

    summary = json.loads(summary_path.read_text())
    assert summary["broker"] == f"{mqtt_broker.host}:{mqtt_broker.port}"
    assert summary["events_after_first_sync"] == live
    changes = summary["changes"]
    assert changes["appended"] > 0
    # About one NOTIFY-driven sync per change, not a storm (expunging a newest message once caused
    # hundreds of syncs per change); the first run is the first sync.
    live_syncs = [s for s in summary["syncs"][1:] if s["strategy"] == "notify"]
    total = changes["appended"] + changes["marked_read"] + changes["expunged"]
    assert 0 < len(live_syncs) <= 2 * total + 5, (len(live_syncs), changes)
    by = {row["strategy"]: row for row in summary["catchup"]}
    assert set(by) == {"list-changedsince", "list-status", "list-status-per-folder"}
    cs, ls, lps = by["list-changedsince"], by["list-status"], by["list-status-per-folder"]
    # Same changes synced by each; only the discovery differs.
    assert cs["folders_synced"] == ls["folders_synced"] == lps["folders_synced"] > 0
    assert cs["wire_bytes"] < ls["wire_bytes"]
    assert cs["imap_bytes"] < ls["imap_bytes"] < lps["imap_bytes"]
    assert all(row["energy_j_per_day"] > 0 for row in by.values())
    # The simulator, given this exact account, predicts the discovery bytes the client counted.
    for row in by.values():
        assert row["predicted_discovery_imap_bytes"] == pytest.approx(row["discovery_imap_bytes"], rel=0.05)
    for label in ("LIST-CHANGEDSINCE", "LIST-STATUS", "LIST + STATUS"):
        assert label in r.stdout
    assert not _data_dir(r.stdout).exists()  # removed without --keep


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_signal_mid_run_stops_everything(sig: signal.Signals, mqtt_broker: MosquittoBroker) -> None:
    broker = f"{mqtt_broker.host}:{mqtt_broker.port}"
    args = ["demo", "--folders", "50", "--duration", "60", "--broker", broker]
    proc = subprocess.Popen(
        cli_command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **WIDE},
    )
    lines: list[str] = []
    changing = threading.Event()
    event_shown = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "another device changes" in line:
                changing.set()
            elif changing.is_set() and line.startswith("app "):
                event_shown.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert event_shown.wait(MARKER_TIMEOUT_S), "".join(lines)[-5000:]
        children = psutil.Process(proc.pid).children(recursive=True)  # none today; all must go
        proc.send_signal(sig)
        rc = proc.wait(STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(STOP_TIMEOUT_S)
    out = "".join(lines)
    assert rc == 128 + sig, out[-5000:]
    assert "stopped cleanly" in out
    assert "Traceback" not in out
    _, alive = psutil.wait_procs(children, timeout=STOP_TIMEOUT_S)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert not _data_dir(out).exists()


def test_demo_bad_options_fail_in_one_line_before_starting_anything() -> None:
    for args, needle in (
        (["--radio", "carrier-pigeon"], "unknown radio profile"),
        (["--broker", "localhost"], "is not HOST:PORT"),
    ):
        r = run_cli(["demo", *args], env=WIDE, timeout_s=RUN_TIMEOUT_S)
        assert r.returncode == 2, r.stdout + r.stderr
        assert needle in r.stderr
        assert "Traceback" not in r.stderr
        assert "data dir" not in r.stdout  # nothing was started


def test_demo_without_a_broker_says_how_to_get_one_before_starting_anything() -> None:
    port = free_port()  # nothing listens here
    r = run_cli(["demo", "--broker", f"127.0.0.1:{port}"], env=WIDE, timeout_s=RUN_TIMEOUT_S)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == (
        f"error: no MQTT v5 broker answers on 127.0.0.1:{port}: start one (`mosquitto -d`, "
        "Debian package mosquitto) or pass --broker HOST:PORT"
    )
    assert "data dir" not in r.stdout  # nothing was seeded or started


def test_keep_moves_a_ram_work_dir_to_disk() -> None:
    """--keep promises data that survives a reboot: a /dev/shm work dir is moved out of RAM."""
    import shutil
    import tempfile

    from cpmsync.demo.runner import _persist

    ram = Path(tempfile.mkdtemp(prefix="cpmsync-demo-test-", dir="/dev/shm"))
    (ram / "cache.sqlite").write_bytes(b"x")
    kept = _persist(ram)
    try:
        assert not kept.is_relative_to("/dev/shm") and (kept / "cache.sqlite").read_bytes() == b"x"
        assert not ram.exists()
    finally:
        shutil.rmtree(kept, ignore_errors=True)
        shutil.rmtree(ram, ignore_errors=True)
