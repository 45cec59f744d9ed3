"""`cpmsync simulate ...` as a user runs it: tables, JSON, files, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import run_cli


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["simulate", *args], timeout_s=300)


def test_bytes_json_shows_changedsince_is_independent_of_folder_count() -> None:
    small = json.loads(
        cli("bytes", "--folders", "100", "--changed", "2", "--strategy", "list-changedsince", "--json").stdout
    )
    big = json.loads(
        cli(
            "bytes", "--folders", "5000", "--changed", "2", "--strategy", "list-changedsince", "--json"
        ).stdout
    )
    ls = json.loads(
        cli("bytes", "--folders", "5000", "--changed", "2", "--strategy", "list-status", "--json").stdout
    )
    assert abs(big["imap_down"] - small["imap_down"]) < 300
    assert ls["imap_down"] > 50 * big["imap_down"]
    assert big["wire_down"] > big["tls_down"] > big["imap_down"]


def test_bytes_table_and_bad_strategy() -> None:
    out = cli("bytes", "--folders", "300", "--changed", "1", "--strategy", "list-status", "--compress")
    assert out.returncode == 0 and "on the wire" in out.stdout
    bad = cli("bytes", "--strategy", "list-everything")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "list-changedsince" in bad.stderr


def test_bytes_accepts_the_old_name_of_the_per_folder_strategy() -> None:
    """`list-status-each` (the simulator's name until Dec 2026) is the daemon's list-status-per-folder."""
    old = json.loads(cli("bytes", "--folders", "50", "--strategy", "list-status-each", "--json").stdout)
    new = json.loads(cli("bytes", "--folders", "50", "--strategy", "list-status-per-folder", "--json").stdout)
    assert old == new and new["strategy"] == "list-status-per-folder"


def test_run_writes_csv_json_and_a_timeline(tmp_path: Path) -> None:
    scn = tmp_path / "tiny.toml"
    scn.write_text(
        'name = "tiny"\nfolders = 300\n[arrivals]\nmessages_per_day = 30.0\n'
        "[device]\npoll_interval_s = 1800.0\n"
    )
    out = cli(
        "run",
        str(scn),
        "--radio",
        "lte,wifi",
        "--out",
        str(tmp_path / "o"),
        "--strategy",
        "list-changedsince",
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "o" / "tiny.json").read_text())
    assert {r["radio"] for r in rows} == {"lte", "wifi"}
    assert {r["strategy"] for r in rows} == {
        "list-changedsince+poll", "list-changedsince+deflate+poll",
        "list-changedsince+push", "list-changedsince+deflate+push",
    }  # fmt: skip
    assert (tmp_path / "o" / "tiny.csv").read_text().startswith("scenario,folders,strategy")
    assert "sync_energy_j_per_day" in (tmp_path / "o" / "tiny.csv").read_text().splitlines()[0]
    # energy above the idle floor: below the total, and the floor is the same for every strategy
    for radio in ("lte", "wifi"):
        floors = {
            round(r["energy_j_per_day"] - r["sync_energy_j_per_day"], 6) for r in rows if r["radio"] == radio
        }
        assert len(floors) == 1 and floors.pop() > 0
    assert all(0 < r["sync_energy_j_per_day"] < r["energy_j_per_day"] for r in rows)
    assert "sync J/day above idle" in out.stdout
    png = tmp_path / "o" / "tiny-timeline-lte.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "J/day" in out.stdout


def test_unknown_scenario_is_one_line() -> None:
    out = cli("run", "nosuch")
    assert out.returncode == 2 and "unknown scenario" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_trace_prices_a_recorded_trace(tmp_path: Path, fmt: str) -> None:
    rows = [(1000.0, "up", 120), (1000.08, "down", 900), (1400.0, "down", 60)]
    f = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        f.write_text("t_s,direction,bytes\n" + "".join(f"{t},{d},{n}\n" for t, d, n in rows))
    else:
        f.write_text("".join(json.dumps({"t_s": t, "direction": d, "bytes": n}) + "\n" for t, d, n in rows))
    out = cli("trace", str(f), "--radio", "lte", "--json")
    assert out.returncode == 0, out.stderr
    (r,) = json.loads(out.stdout)
    assert r["radio_wakes"] == 2  # 400 s apart: two separate promotions on LTE
    assert r["wire_bytes_up"] > 120 and r["wire_bytes_down"] > 960
    assert r["energy_j"] > 2 * 11.576 * 1.06


def test_trace_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("t_s,direction,bytes\n1.0,sideways,10\n")
    out = cli("trace", str(f))
    assert out.returncode == 2 and "bad.csv:2" in out.stderr and "Traceback" not in out.stderr


def test_malformed_trace_is_a_trace_error_not_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,direction,bytes\nx,up,3\n")
    r = cli("trace", str(bad), "--radio", "lte")
    assert r.returncode == 2
    assert r.stderr.startswith("trace error:") and "bad.csv:2" in r.stderr
    assert "Traceback" not in r.stderr
