"""P1-3: a daemon without an IMAP password stops at once with one line; a refused login is
reported once as an ERROR saying what to check, and retried at the slowest rate only."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from daemon_sync_helpers import wait_until

from cpmsync.config import ConfigError
from cpmsync.daemon.cache import Cache
from cpmsync.daemon.service import ImapSession
from cpmsync.daemon.settings import DaemonSettings, load_daemon_settings
from tests.msgstore.server_testlib import ThreadServer, make_settings
from tests.support import run_cli

NO_PASSWORD = "imap: no password: set imap.password_file or CPMSYNC_IMAP__PASSWORD"


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "d.toml"
    cfg.write_text(
        '[imap]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\nusername = "alice"\n'
        f'[cache]\npath = "{tmp_path / "cache.sqlite"}"\n'
    )
    return cfg


def _env_without_password() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CPMSYNC_IMAP__PASSWORD")}


def test_daemon_run_without_password_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in list(os.environ):
        if k.startswith("CPMSYNC_IMAP__PASSWORD"):
            monkeypatch.delenv(k)
    r = run_cli(["daemon", "run", "--config", str(_config(tmp_path))], env=_env_without_password())
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"cpmsync daemon: {NO_PASSWORD}"]
    assert not (tmp_path / "cache.sqlite").exists()  # nothing started


def test_no_password_is_a_config_error_for_the_daemon_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in list(os.environ):
        if k.startswith("CPMSYNC_IMAP__PASSWORD"):
            monkeypatch.delenv(k)
    cfg = _config(tmp_path)
    with pytest.raises(ConfigError, match=NO_PASSWORD):
        load_daemon_settings(cfg, imap_login=True)
    load_daemon_settings(cfg)  # `watch` and `stats` need no IMAP password
    monkeypatch.setenv("CPMSYNC_IMAP__PASSWORD", "pw")
    assert load_daemon_settings(cfg, imap_login=True).imap.secret() == "pw"


async def test_refused_login_is_one_error_and_retried_at_reconnect_max(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cpmsync")
    with ThreadServer(make_settings()) as srv:
        settings = DaemonSettings.model_validate(
            {
                "account": {"id": "alice"},
                "imap": {
                    "host": "127.0.0.1",
                    "port": srv.port,
                    "tls": "none",
                    "username": "alice",
                    "password": "wrong",
                    "reconnect_min_s": 0.01,
                    "reconnect_max_s": 0.2,
                },
                "cache": {"path": str(tmp_path / "c.sqlite")},
            }
        )
        cache = Cache.open(settings.cache.path, "alice")
        session = ImapSession(settings, cache, None)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(session.run())
            await wait_until(lambda: session.errors >= 3)
            session.stop.set()
            await task
        cache.close()
    records = [r for r in caplog.records if r.name.startswith("cpmsync.daemon")]
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "check the password" in errors[0].getMessage()
    assert errors[0].retry_s == 0.2  # type: ignore[attr-defined]
    # No fast 0.01 s ramp: every retry waits reconnect_max_s.
    assert all(getattr(r, "retry_s", 0.2) == 0.2 for r in records)
    assert not [r for r in records if r.getMessage() == "IMAP session ended, reconnecting"]
