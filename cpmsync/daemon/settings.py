"""Configuration of the sync daemon: `[account]`, `[imap]`, `[mqtt]`, `[cache]`, `[trace]`.

Every interval and limit carries its unit in its name. Plaintext IMAP to anything but loopback
is refused unless asked for, because the password would cross the network in the clear.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from cpmsync.config import ConfigError, CpmSettings, load_config, read_secret
from cpmsync.daemon.schedule import HeartbeatSettings
from cpmsync.models.fields import from_attributes

__all__ = [
    "AccountSettings",
    "ActionsSettings",
    "CacheSettings",
    "DaemonSettings",
    "ImapSettings",
    "MqttSettings",
    "TraceSettings",
    "is_loopback",
    "load_daemon_settings",
]


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1: the only places plaintext is safe by default."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountSettings(_Section):
    """Which account this daemon mirrors; it names the MQTT topics and the cache file."""

    id: str = Field("default", min_length=1, pattern=r"^[^/+#\x00]+$")


class ImapSettings(_Section):
    """The connection to the CPM Message Store and the sync cadence."""

    host: str = "localhost"
    port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["none", "starttls", "implicit"] = "implicit"
    # Extra CA bundle to trust (e.g. a test server's self-signed certificate); None = system store.
    ca_file: Path | None = None
    username: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    allow_plaintext: bool = False
    auth: Literal["plain", "login"] = "plain"
    compress: bool = True
    idle_folder: str = "INBOX"
    keepalive_s: float = Field(25 * 60, gt=0, le=29 * 60)
    poll_interval_s: float = Field(300.0, gt=0)
    # With NOTIFY the server names every change, so no blind discovery poll runs (each one is a
    # radio wake). A positive value re-enables it as a safety net for a server whose NOTIFY
    # is known to miss changes; 0 = off.
    notify_poll_interval_s: float = Field(0.0, ge=0)
    notify_check_on_heartbeat: bool = True
    debounce_ms: int = Field(250, ge=0)
    command_timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(20.0, gt=0)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(300.0, gt=0)
    names_list_interval_s: float = Field(3600.0, gt=0)
    # The server lists deleted (\NonExistent) and renamed (OLDNAME) folders under LIST-CHANGEDSINCE
    # (cpmsync msgstore's extension; the CR itself does not): no names-only LIST after a restart.
    changedsince_reports_gone: bool = False
    status_window: int = Field(128, ge=1, le=10_000)
    # Commands in flight while many folders are synced (EXAMINE + FETCH per folder, pipelined).
    sync_window: int = Field(1024, ge=1, le=100_000)
    preview_bytes: int = Field(256, ge=0)
    # A multipart/CPIM body whose preview_bytes prefix ends before its text part: one more FETCH
    # of this many bytes for those messages only (0: no retry, no preview for them).
    preview_retry_bytes: int = Field(1024, ge=0)
    fetch_bodies: bool = False
    max_body_bytes: int = Field(1_000_000, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ImapSettings:
        if self.tls == "none" and not self.allow_plaintext and not is_loopback(self.host):
            raise ValueError(
                f"tls = 'none' to non-loopback host {self.host!r} would send the password in the clear; "
                "use tls = 'implicit' or 'starttls', or set allow_plaintext = true"
            )
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def effective_port(self) -> int:
        """993 for implicit TLS, 143 otherwise, unless a port is configured."""
        if self.port is not None:
            return self.port
        return 993 if self.tls == "implicit" else 143

    def secret(self) -> str | None:
        """The IMAP password: password_file wins over password (usually CPMSYNC_IMAP__PASSWORD)."""
        return read_secret(self.password, self.password_file, "imap.password")


class MqttSettings(_Section):
    """The local broker the UI apps subscribe to."""

    host: str = "localhost"
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    client_id: str | None = None
    topic_prefix: str = Field("cpm", min_length=1, pattern=r"^[^+#\x00]+$")
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(60, ge=5, le=65535)
    session_expiry_s: int = Field(24 * 3600, ge=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    max_inflight: int = Field(20, ge=1, le=65535)
    close_timeout_s: float = Field(5.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    ack_timeout_s: float = Field(10.0, gt=0)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    def secret(self) -> str | None:
        return read_secret(self.password, self.password_file, "mqtt.password")


def _default_cache_path() -> Path:
    import platformdirs  # only when no cache.path is set (the systemd unit sets one)

    return Path(platformdirs.user_state_dir("cpmsync")) / "cache.sqlite"


class CacheSettings(_Section):
    """Where the SQLite cache lives (WAL mode: keep it on a local filesystem)."""

    path: Path = Field(default_factory=_default_cache_path)


class TraceSettings(_Section):
    """Per-connection (time, direction, bytes) trace for the simulator's trace mode."""

    enabled: bool = False
    max_entries: int = Field(100_000, ge=0)


class HeartbeatSection(_Section):
    """How the daemon keeps its held connection alive with the fewest radio wakes (schedule.py)."""

    adaptive: bool = True
    initial_s: float = Field(240.0, gt=0)
    min_s: float = Field(60.0, gt=0)
    max_s: float = Field(28 * 60.0, gt=0, le=29 * 60)
    step_s: float = Field(180.0, gt=0)
    reprobe_after_s: float = Field(86400.0, gt=0)
    reply_timeout_s: float = Field(10.0, gt=0)
    # Which network the device is on, so what was learned is kept per network: set it here, or
    # let the platform write the current id (e.g. a hash of the Wi-Fi SSID, or the cell's MCC-MNC)
    # into network_id_file, read at every connect. Neither: one default network.
    network_id: str = ""
    network_id_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> HeartbeatSection:
        if not self.min_s <= self.initial_s <= self.max_s:
            raise ValueError("need min_s <= initial_s <= max_s")
        return self

    def ladder_settings(self) -> HeartbeatSettings:
        return from_attributes(HeartbeatSettings, self)

    def current_network(self) -> str:
        """The network id now: the platform's file, else the configured id, else "default"."""
        if self.network_id_file is not None:
            try:
                text = Path(self.network_id_file).expanduser().read_text().strip()
            except OSError:
                text = ""
            if text:
                return text[:200]
        return self.network_id or "default"


class ActionsSettings(_Section):
    """Apps acting on the account over MQTT (daemon/actions.py)."""

    enabled: bool = True
    # An action waits this long for others before it wakes an idle link: ten "mark read"s in a
    # burst go out in one radio wake, pipelined. An action arriving while the link is busy rides along.
    window_ms: int = Field(300, ge=0, le=60_000)
    # Refusals (or cuts) before an action is parked with reason "parked" and never retried.
    max_tries: int = Field(5, ge=1, le=100)
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1)  # `append` after base64 decoding
    keep_finished: int = Field(10_000, ge=10)  # finished actions kept to answer a repeated id


class DaemonSettings(CpmSettings):
    """The whole daemon configuration (config/daemon.toml, CPMSYNC_SECTION__KEY overrides)."""

    account: AccountSettings = Field(default_factory=AccountSettings)
    imap: ImapSettings = Field(default_factory=ImapSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    trace: TraceSettings = Field(default_factory=TraceSettings)
    heartbeat: HeartbeatSection = Field(default_factory=HeartbeatSection)
    actions: ActionsSettings = Field(default_factory=ActionsSettings)


def load_daemon_settings(path: Path | str | None, *, imap_login: bool = False) -> DaemonSettings:
    """Load and validate; any problem becomes one ConfigError naming the file and key.

    `imap_login=True` (the daemon itself, not `watch`/`stats`): the IMAP username and password
    must be set; without a password every login fails and the daemon would retry forever.
    """
    settings = load_config(DaemonSettings, path)
    if imap_login and not settings.imap.username:
        raise ConfigError(f"{path}: imap.username is not set")
    if (
        settings.imap.password_file is not None
        and not Path(settings.imap.password_file).expanduser().exists()
    ):
        raise ConfigError(f"imap.password_file: {settings.imap.password_file} does not exist")
    if imap_login and not settings.imap.secret():
        raise ConfigError("imap: no password: set imap.password_file or CPMSYNC_IMAP__PASSWORD")
    return settings
