"""`cpmsync daemon stats`: sync runs and bytes per strategy, read from the cache."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cpmsync.cli import app
from cpmsync.daemon.cache import Cache


def test_stats_sums_bytes_per_strategy(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[account]\nid = "acct"\n[cache]\npath = "{cache_path}"\n')
    c = Cache.open(cache_path, "acct")
    c.update_account(server="imap.example.org", strategy="list-changedsince")
    for strategy, wire in [("list-changedsince", 300), ("list-changedsince", 500), ("list-status", 90_000)]:
        run = c.start_run(strategy)
        c.finish_run(
            run, bytes_in=wire * 3, bytes_out=100, wire_bytes_in=wire, wire_bytes_out=40, folders_touched=3
        )
    failed = c.start_run("list-status")
    c.finish_run(failed, error="connection reset")
    c.close()
    # An 80-column terminal: every figure readable, nothing cut to "…".
    result = CliRunner().invoke(app, ["daemon", "stats", "--config", str(cfg)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(x) <= 80 for x in lines) and "…" not in result.output
    assert lines[0].split()[2:4] == ["server=imap.example.org", "strategy=list-changedsince"]

    def cells(prefix: str) -> list[str]:
        return next(x.split() for x in lines if x.split()[:1] == [prefix])

    # strategy, runs, errors, folders, in, out, wire in, wire out, wire/run
    assert cells("list-changedsince") == [
        "list-changedsince",
        "2",
        "0",
        "6",
        "2400",
        "200",
        "800",
        "80",
        "440",
    ]
    assert cells("list-status")[:7] == ["list-status", "2", "1", "3", "270000", "100", "90000"]
    assert "connection reset" in " ".join(result.output.split())  # the error column wraps


def test_stats_names_server_and_strategy_after_an_interrupted_first_sync(tmp_path: Path) -> None:
    """The account row gets its strategy only after a complete catch-up: until then stats shows the
    strategy of the latest run, and the server the daemon recorded at start (not "None")."""
    cache_path = tmp_path / "cache.sqlite"
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[account]\nid = "acct"\n[cache]\npath = "{cache_path}"\n')
    c = Cache.open(cache_path, "acct")
    c.update_account(server="imap://alice@127.0.0.1:143")
    c.finish_run(c.start_run("list-status"), folders_touched=3786, error="interrupted")
    c.close()
    result = CliRunner().invoke(app, ["daemon", "stats", "--config", str(cfg)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    head = result.output.split()
    assert "server=imap://alice@127.0.0.1:143" in head and "strategy=list-status" in head
    assert "None" not in result.output and "interrupted" in head


def test_stats_without_a_cache_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[cache]\npath = "{tmp_path / "none.sqlite"}"\n')
    result = CliRunner().invoke(app, ["daemon", "stats", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "has not synced yet" in result.output


def test_stats_never_migrates_or_drops_a_cache_of_another_schema(tmp_path: Path) -> None:
    import sqlite3

    cache_path = tmp_path / "cache.sqlite"
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[account]\nid = "acct"\n[cache]\npath = "{cache_path}"\n')
    c = Cache.open(cache_path, "acct")
    c.start_run("list-status")
    c.close()
    con = sqlite3.connect(cache_path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    result = CliRunner().invoke(app, ["daemon", "stats", "--config", str(cfg)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "schema v99" in result.output
    con = sqlite3.connect(cache_path)
    assert con.execute("SELECT count(*) FROM sync_run").fetchone()[0] == 1  # untouched
