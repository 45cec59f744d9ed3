"""Settings of the reference Message Store: listeners, limits, capability switches, database.

Every IMAP extension is a switch so one server can play both the CPM server of the CR and a
legacy server (`MsgstoreSettings.legacy()`) for side-by-side comparisons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cpmsync.config import ConfigError, CpmSettings, load_config, read_secret

__all__ = [
    "CAPABILITY_FIELDS",
    "ExtensionsSection",
    "LimitsSection",
    "MsgstoreSettings",
    "ServerSection",
    "StoreSection",
    "default_db_url",
    "legacy_preset",
    "load_msgstore_settings",
    "parse_hostport",
]

# RFC 3501 5.4: the server MUST NOT drop an idle client in less than 30 minutes.
_MIN_IDLE_TIMEOUT_S = 1800

# Capability atom -> field of ExtensionsSection, in the order they are advertised.
CAPABILITY_FIELDS: dict[str, str] = {
    "LITERAL+": "literal_plus",
    "SASL-IR": "sasl_ir",
    "ID": "id",
    "ENABLE": "enable",
    "IDLE": "idle",
    "NAMESPACE": "namespace",
    "UIDPLUS": "uidplus",
    "MOVE": "move",
    "UNSELECT": "unselect",
    "ESEARCH": "esearch",
    "LIST-EXTENDED": "list_extended",
    "LIST-STATUS": "list_status",
    "CONDSTORE": "condstore",
    "QRESYNC": "qresync",
    "NOTIFY": "notify",
    "OBJECTID": "objectid",
    "COMPRESS=DEFLATE": "compress_deflate",
    "LIST-CHANGEDSINCE": "list_changedsince",
}


def parse_hostport(value: str) -> tuple[str, int]:
    """`"127.0.0.1:1143"` / `"[::1]:1143"` -> (host, port); ValueError with the reason otherwise."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"{value!r}: port {port_s!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} out of range 0..65535")
    return host, port


def default_db_url() -> str:
    """SQLite file under the user's data dir, e.g. ~/.local/share/cpmsync/msgstore.sqlite."""
    d = Path(platformdirs.user_data_dir("cpmsync", appauthor=False))
    return f"sqlite:///{d / 'msgstore.sqlite'}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSection(_Section):
    """Where and how the IMAP server listens."""

    listen: list[str] = Field(default_factory=lambda: ["127.0.0.1:1143"])
    tls_listen: list[str] = Field(default_factory=list)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    starttls: bool = True
    # RFC 3501 6.2.3 / 9051: LOGINDISABLED on cleartext connections; loopback is exempt for local tests.
    allow_plaintext_login_non_loopback: bool = False
    # 0 = never send unsolicited "* OK still here" during IDLE: each one wakes the phone's radio
    # (Dovecot's 2-minute imap_idle_notify_interval is a known battery drain). NAT keep-alive is the
    # client's business: it knows its network and can re-IDLE.
    idle_keepalive_s: int = Field(0, ge=0)
    idle_timeout_s: int = Field(_MIN_IDLE_TIMEOUT_S, ge=_MIN_IDLE_TIMEOUT_S)
    hostname: str = "cpmsync"

    @field_validator("listen", "tls_listen")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        for item in v:
            parse_hostport(item)
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSection:
        if (self.tls_listen or self.starttls) and (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_listen and self.tls_cert_file is None:
            raise ValueError("tls_listen needs tls_cert_file and tls_key_file")
        return self


class LimitsSection(_Section):
    """Bounds on what one client can make the server hold or do."""

    max_line_bytes: int = Field(64 * 1024, ge=1024)
    max_literal_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_connections_per_user: int = Field(100, ge=1)
    max_connections_per_address: int = Field(200, ge=1)
    max_commands_per_s: float = Field(0.0, ge=0)  # 0 = unlimited
    auth_failure_delay_ms: int = Field(2000, ge=0)


class ExtensionsSection(_Section):
    """One switch per advertised capability (IMAP4rev1 is always there)."""

    literal_plus: bool = True
    sasl_ir: bool = True
    id: bool = True
    enable: bool = True
    idle: bool = True
    namespace: bool = True
    uidplus: bool = True
    move: bool = True
    unselect: bool = True
    esearch: bool = True
    list_extended: bool = True
    list_status: bool = True
    condstore: bool = True
    qresync: bool = True
    notify: bool = True
    objectid: bool = True
    compress_deflate: bool = True
    list_changedsince: bool = True
    # Our extension beyond the CR: under CHANGEDSINCE, mailboxes deleted since the MODSEQ are listed
    # once with \NonExistent and renamed ones carry OLDNAME, so a client never needs a full LIST again.
    # false = strict CR behaviour (deletions and renames are invisible to CHANGEDSINCE).
    changedsince_deletions_and_renames: bool = True

    @model_validator(mode="after")
    def _dependencies(self) -> ExtensionsSection:
        if self.list_changedsince and not self.condstore:
            # CR Appendix I.2: LIST-CHANGEDSINCE "must necessarily also support CONDSTORE".
            raise ValueError("list_changedsince requires condstore (CR Appendix I.2)")
        return self

    def enabled(self, capability: str) -> bool:
        """Whether capability atom `capability` (e.g. "CONDSTORE") is switched on."""
        if capability.upper() == "IMAP4REV1":
            return True
        field = CAPABILITY_FIELDS.get(capability.upper())
        return bool(field and getattr(self, field))

    def capabilities(self) -> list[str]:
        """Atoms to advertise, in a stable order; connection-dependent ones (STARTTLS, AUTH=,
        LOGINDISABLED) are added by the server."""
        return ["IMAP4rev1"] + [cap for cap, f in CAPABILITY_FIELDS.items() if getattr(self, f)]


class StoreSection(_Section):
    """The database behind the store."""

    # Any SQLAlchemy URL; empty = SQLite file under the user's data dir.
    db_url: str = ""
    # Password for the db URL kept out of the TOML: inline (env) or read from a file.
    db_password: SecretStr | None = None
    db_password_file: Path | None = None
    # SQLite only: FULL makes each commit survive power loss, not just a crash of this process.
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync(cls, v: str) -> str:
        if v.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return v.upper()

    def resolved_db_url(self) -> str:
        """The URL to open, with the password from `db_password(_file)` filled in."""
        from sqlalchemy.engine import make_url

        url = self.db_url or default_db_url()
        secret = read_secret(self.db_password, self.db_password_file, "store.db_password")
        if secret is None:
            return url
        try:
            u = make_url(url)
        except Exception as e:
            raise ConfigError(f"store.db_url: {e}") from None
        return u.set(password=secret).render_as_string(hide_password=False)


class MsgstoreSettings(CpmSettings):
    """`config/msgstore.toml`: [server] [limits] [extensions] [store]."""

    server: ServerSection = Field(default_factory=ServerSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    extensions: ExtensionsSection = Field(default_factory=ExtensionsSection)
    store: StoreSection = Field(default_factory=StoreSection)

    @classmethod
    def legacy(cls, **sections: Any) -> MsgstoreSettings:
        """A pre-CR server for comparisons: see `legacy_preset`."""
        data: dict[str, Any] = dict(legacy_preset())
        for k, v in sections.items():
            data.setdefault(k, {}).update(v)
        return cls(**data)


def legacy_preset() -> dict[str, dict[str, Any]]:
    """Settings of a "legacy" CPM store: plain RFC 3501 LIST + STATUS per folder.

    No LIST-CHANGEDSINCE, no LIST-STATUS, no CONDSTORE/QRESYNC, no NOTIFY: what a client meets on a
    server that predates the CR, so the simulator and benches can measure the difference.
    """
    return {
        "extensions": {
            "list_changedsince": False,
            "list_status": False,
            "condstore": False,
            "qresync": False,
            "notify": False,
            "changedsince_deletions_and_renames": False,
        }
    }


def load_msgstore_settings(path: Path | str | None) -> MsgstoreSettings:
    """Load the TOML file (or defaults) plus CPMSYNC_* env; ConfigError names the file and key."""
    return load_config(MsgstoreSettings, path)
