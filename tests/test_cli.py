"""The console script and configuration errors, as a user meets them."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from cpmsync.config import ConfigError, CpmSettings, load_config
from tests.support import run_cli


def test_help_lists_every_subcommand() -> None:
    out = run_cli(["--help"], check=True).stdout
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
    with pytest.raises(ConfigError) as e:
        load_config(_Settings, f)
    assert str(f) in str(e.value) and "imap.port" in str(e.value)


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "d.toml"
    f.write_text("[imap\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_Settings, f)


def test_environment_overrides_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "d.toml"
    f.write_text('[imap]\nhost = "a"\nport = 1\n')
    monkeypatch.setenv("CPMSYNC_IMAP__PORT", "2")
    s = load_config(_Settings, f)
    assert s.imap.port == 2


def test_unknown_log_level_is_a_usage_error_not_a_traceback() -> None:
    r = run_cli(["--log-level", "BOGUS", "simulate", "profiles"])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "--log-level" in r.stderr


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "d.toml"
    f.write_text("[imap]\nport = 1\n")
    monkeypatch.setenv("CPMSYNC_IMAP__PORT", "nine")
    with pytest.raises(ConfigError, match="environment CPMSYNC_IMAP__PORT"):
        load_config(_Settings, f)
