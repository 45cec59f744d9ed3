"""Daemon configuration: the shipped config/daemon.toml, env overrides, and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cpmsync.config import ConfigError
from cpmsync.daemon.settings import DaemonSettings, is_loopback, load_daemon_settings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "daemon.toml"


def test_shipped_config_loads_and_equals_the_defaults() -> None:
    s = load_daemon_settings(SHIPPED)
    d = DaemonSettings()
    for section in ("account", "imap", "mqtt", "trace"):
        assert getattr(s, section) == getattr(d, section), section


def test_shipped_config_mentions_every_key_with_a_comment() -> None:
    text = SHIPPED.read_text()
    for section, model in DaemonSettings.model_fields.items():
        assert f"[{section}]" in text
        sub = model.annotation
        assert sub is not None
        for key in sub.model_fields:  # type: ignore[union-attr]
            if key == "password":
                continue  # never in the file: CPMSYNC_IMAP__PASSWORD / password_file (both documented)
            assert re.search(rf"^#? ?{key} = ", text, re.M), f"{section}.{key} missing"


def test_password_from_environment_and_file_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPMSYNC_IMAP__PASSWORD", "from-env")
    s = load_daemon_settings(None)
    assert s.imap.secret() == "from-env"
    assert "from-env" not in repr(s)
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    monkeypatch.setenv("CPMSYNC_IMAP__PASSWORD_FILE", str(pw))
    assert load_daemon_settings(None).imap.secret() == "from-file"


def test_plaintext_to_a_remote_host_is_refused_clearly(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text('[imap]\nhost = "imap.example.org"\ntls = "none"\n')
    with pytest.raises(ConfigError, match="allow_plaintext"):
        load_daemon_settings(cfg)
    cfg.write_text('[imap]\nhost = "imap.example.org"\ntls = "none"\nallow_plaintext = true\n')
    assert load_daemon_settings(cfg).imap.effective_port == 143
    cfg.write_text('[imap]\nhost = "127.0.0.1"\ntls = "none"\n')
    assert load_daemon_settings(cfg).imap.tls == "none"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[imap]\nkeepalive_s = 3600\n", "imap.keepalive_s"),  # RFC 2177: re-IDLE before 29 min
        ('[imap]\ntls = "ssl"\n', "imap.tls"),
        ('[mqtt]\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix"),
        ('[account]\nid = "a/b"\n', "account.id"),
        ("[imap]\nbogus = 1\n", "imap.bogus"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_daemon_settings(cfg)


def test_loopback_detection() -> None:
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("imap.example.org")
