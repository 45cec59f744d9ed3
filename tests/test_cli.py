"""The console script and configuration errors, as a user meets them."""

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from cpmsync.config import ConfigError, CpmSettings, load_config


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cpmsync.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for sub in ("msgstore", "daemon", "watch", "simulate", "demo"):
        assert sub in out


class _Imap(BaseModel):
    host: str = "localhost"
    port: int = 993


class _Settings(CpmSettings):
    imap: _Imap = _Imap()


def test_bad_key_names_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "d.toml"
    f.write_text('[imap]\nport = "nine"\n')
    try:
        load_config(_Settings, f)
    except ConfigError as e:
        assert str(f) in str(e) and "imap.port" in str(e)
    else:
        raise AssertionError("invalid port accepted")


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "d.toml"
    f.write_text("[imap\n")
    try:
        load_config(_Settings, f)
    except ConfigError as e:
        assert "not valid TOML" in str(e)
    else:
        raise AssertionError("broken TOML accepted")


def test_environment_overrides_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "d.toml"
    f.write_text('[imap]\nhost = "a"\nport = 1\n')
    monkeypatch.setenv("CPMSYNC_IMAP__PORT", "2")
    s = load_config(_Settings, f)
    assert s.imap.port == 2


def test_unknown_log_level_is_a_usage_error_not_a_traceback() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cpmsync.cli", "--log-level", "BOGUS", "simulate", "profiles"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "--log-level" in r.stderr


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "d.toml"
    f.write_text("[imap]\nport = 1\n")
    monkeypatch.setenv("CPMSYNC_IMAP__PORT", "nine")
    try:
        load_config(_Settings, f)
    except ConfigError as e:
        assert "environment CPMSYNC_IMAP__PORT" in str(e)
    else:
        raise AssertionError("invalid port accepted")
