"""Settings: capability switches, the I.2 dependency, the legacy preset and the shipped config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpmsync.config import ConfigError
from cpmsync.msgstore.settings import MsgstoreSettings, load_msgstore_settings, parse_hostport

REPO = Path(__file__).resolve().parents[2]
ALL_CAPS = (
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT ESEARCH LIST-EXTENDED "
    "LIST-STATUS CONDSTORE QRESYNC NOTIFY OBJECTID COMPRESS=DEFLATE LIST-CHANGEDSINCE"
).split()


def test_defaults_advertise_every_capability() -> None:
    s = MsgstoreSettings()
    assert s.extensions.capabilities() == ALL_CAPS
    assert s.server.listen == ["127.0.0.1:1143"]
    assert s.server.idle_keepalive_s == 0  # no unsolicited radio wake-ups by default
    assert s.server.idle_timeout_s >= 1800


def test_shipped_config_file_loads_and_matches_defaults() -> None:
    s = load_msgstore_settings(REPO / "config" / "msgstore.toml")
    assert s == MsgstoreSettings()


def test_cr_i2_list_changedsince_requires_condstore(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text("[extensions]\ncondstore = false\n")
    with pytest.raises(ConfigError, match=r"list_changedsince requires condstore \(CR Appendix I.2\)"):
        load_msgstore_settings(f)
    f.write_text("[extensions]\ncondstore = false\nlist_changedsince = false\n")
    caps = load_msgstore_settings(f).extensions.capabilities()
    assert "CONDSTORE" not in caps and "LIST-CHANGEDSINCE" not in caps


def test_legacy_preset_is_a_pre_cr_server() -> None:
    caps = MsgstoreSettings.legacy().extensions.capabilities()
    for gone in ("LIST-CHANGEDSINCE", "LIST-STATUS", "CONDSTORE", "QRESYNC", "NOTIFY"):
        assert gone not in caps
    assert "UIDPLUS" in caps and "IDLE" in caps
    assert not MsgstoreSettings.legacy().extensions.changedsince_deletions_and_renames


def test_rfc3501_idle_timeout_below_30_minutes_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text("[server]\nidle_timeout_s = 600\n")
    with pytest.raises(ConfigError, match=r"server\.idle_timeout_s"):
        load_msgstore_settings(f)


def test_bad_listen_and_unknown_keys_name_the_key(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text('[server]\nlisten = ["localhost"]\n[limits]\nmax_lines = 3\n')
    with pytest.raises(ConfigError) as e:
        load_msgstore_settings(f)
    assert "server.listen" in str(e.value) and "limits.max_lines" in str(e.value)
    assert "unknown key" in str(e.value)


def test_tls_listen_needs_a_certificate(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text('[server]\ntls_listen = ["127.0.0.1:1993"]\n')
    with pytest.raises(ConfigError, match="tls_cert_file"):
        load_msgstore_settings(f)


def test_environment_overrides_and_db_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    monkeypatch.setenv("CPMSYNC_STORE__DB_URL", "postgresql://cpm@127.0.0.1/cpm")
    monkeypatch.setenv("CPMSYNC_STORE__DB_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("CPMSYNC_EXTENSIONS__NOTIFY", "false")
    s = load_msgstore_settings(None)
    assert s.store.resolved_db_url() == "postgresql://cpm:s3cret@127.0.0.1/cpm"
    assert not s.extensions.enabled("NOTIFY") and s.extensions.enabled("imap4rev1")


def test_default_db_is_a_sqlite_file_in_the_data_dir() -> None:
    url = MsgstoreSettings().store.resolved_db_url()
    assert url.startswith("sqlite:///") and url.endswith("msgstore.sqlite")


@pytest.mark.parametrize(
    ("value", "expected"), [("127.0.0.1:1143", ("127.0.0.1", 1143)), ("[::1]:993", ("::1", 993))]
)
def test_parse_hostport(value: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(value) == expected


@pytest.mark.parametrize("value", ["1143", "host:", "host:99999", ":80"])
def test_parse_hostport_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(value)
