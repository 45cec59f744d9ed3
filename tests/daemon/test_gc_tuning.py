"""`cpmsync daemon run` starts its loop with the service's collector settings (gc_tuning.py):
start-up's objects frozen out of later collections and a gen-0 threshold a sync's burst of
short-lived responses does not trip every few folders (a tenth of a first sync's CPU)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cpmsync.cli import app
from cpmsync.daemon import service
from cpmsync.daemon.gc_tuning import SERVICE_THRESHOLDS
from cpmsync.daemon.settings import DaemonSettings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_daemon_run_loop_starts_with_service_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_gc: None
) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text(
        '[imap]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\nusername = "alice"\n'
        f'[cache]\npath = "{tmp_path / "cache.sqlite"}"\n'
    )
    monkeypatch.setenv("CPMSYNC_IMAP__PASSWORD", "pw")
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever the test run set before
    seen: dict[str, object] = {}

    async def fake_run(settings: DaemonSettings) -> None:  # stands in for the service loop only
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()
        seen["enabled"] = gc.isenabled()
        seen["account"] = settings.account.id

    monkeypatch.setattr(service, "run_daemon", fake_run)
    r = CliRunner().invoke(app, ["daemon", "run", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert seen["threshold"] == SERVICE_THRESHOLDS
    assert seen["enabled"] is True  # start-up ran without the collector (service_start); the loop has it
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000  # the imported modules' objects


def test_daemon_run_with_a_bad_config_leaves_the_collector_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_gc: None
) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text('[imap]\nport = "not a port"\n')
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    r = CliRunner().invoke(app, ["daemon", "run", "--config", str(cfg)])
    assert r.exit_code == 2, r.output
    assert gc.isenabled() and gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
