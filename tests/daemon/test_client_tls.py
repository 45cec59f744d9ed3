"""TLS by default: implicit TLS and STARTTLS against our msgstore with a self-signed certificate
given as ca_file; the host name is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpmsync.daemon.imap_client import ImapClient, ImapConnectionLost
from cpmsync.msgstore.tls_cert import make_self_signed
from tests.msgstore.server_testlib import ThreadServer, make_settings


@pytest.fixture
def tls_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    cert, key = make_self_signed(tmp_path, "localhost")
    settings = make_settings(
        server={"tls_listen": ["127.0.0.1:0"], "tls_cert_file": str(cert), "tls_key_file": str(key)}
    )
    with ThreadServer(settings) as srv:
        yield srv, cert


async def test_implicit_tls_with_ca_file(tls_server) -> None:  # type: ignore[no-untyped-def]
    srv, cert = tls_server
    assert srv.server is not None
    async with ImapClient("localhost", srv.server.tls_port, tls="implicit", ca_file=cert) as imap:
        await imap.login("alice", "alice-pw")
        assert imap.has("IMAP4rev1")
        await imap.noop()


async def test_starttls_upgrades_before_login(tls_server) -> None:  # type: ignore[no-untyped-def]
    srv, cert = tls_server
    async with ImapClient("localhost", srv.port, tls="starttls", ca_file=cert) as imap:
        await imap.login("alice", "alice-pw")
        lists, _ = await imap.list_folders("*")
        assert [x.name for x in lists] == ["INBOX"]


async def test_unknown_issuer_is_refused(tls_server) -> None:  # type: ignore[no-untyped-def]
    srv, _cert = tls_server
    assert srv.server is not None
    with pytest.raises(ImapConnectionLost, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        async with ImapClient("localhost", srv.server.tls_port, tls="implicit"):
            pass  # system trust store: a self-signed certificate is not trusted


async def test_daemon_settings_ca_file_reaches_the_client(tls_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`[imap] ca_file` in daemon.toml is what lets the daemon trust `msgstore tls make-cert`'s pair."""
    from cpmsync.daemon.service import connect
    from cpmsync.daemon.settings import load_daemon_settings

    srv, cert = tls_server
    assert srv.server is not None
    cfg = tmp_path / "daemon.toml"
    cfg.write_text(
        f'[imap]\nhost = "localhost"\nport = {srv.server.tls_port}\ntls = "implicit"\n'
        f'ca_file = "{cert}"\nusername = "alice"\n'
    )
    settings = load_daemon_settings(cfg)
    async with connect(settings) as imap:
        await imap.login("alice", "alice-pw")
        await imap.noop()
