"""RFC 3501 6.2.1 STARTTLS, implicit TLS, and LOGINDISABLED on plaintext non-loopback links."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
from server_testlib import Client, make_settings, running_server

from cpmsync.imap import CapabilityData, StatusResponse
from cpmsync.msgstore.tls_cert import make_self_signed


@pytest.fixture
def tls_settings(tmp_path: Path) -> object:
    cert, key = make_self_signed(tmp_path, "localhost")
    return make_settings(
        server={"tls_listen": ["127.0.0.1:0"], "tls_cert_file": str(cert), "tls_key_file": str(key)}
    )


def _client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def test_6_2_1_starttls_then_login(tls_settings: object) -> None:
    async with running_server(tls_settings) as srv, srv.client() as c:  # type: ignore[arg-type]
        caps = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        assert "STARTTLS" in caps
        assert (await c.cmd("STARTTLS")).ok
        await c.writer.start_tls(_client_ctx())
        caps = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        assert "STARTTLS" not in caps
        await c.login()
        assert (await c.cmd("STARTTLS")).status == "BAD"


async def test_implicit_tls_port(tls_settings: object) -> None:
    async with running_server(tls_settings) as srv:  # type: ignore[arg-type]
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.server.tls_port, ssl=_client_ctx())
        try:
            greeting = await reader.readline()
            assert greeting.startswith(b"* OK")
            writer.write(b"a LOGIN alice alice-pw\r\n")
            line = await reader.readline()
            assert line.startswith(b"a OK")
        finally:
            writer.close()


def _non_loopback_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


async def test_6_2_3_logindisabled_on_plaintext_non_loopback() -> None:
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    async with running_server(make_settings(server={"listen": [f"{ip}:0"]})) as srv:
        async with Client(ip, srv.port) as c:
            caps = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
            assert "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps
            reply = await c.cmd('LOGIN alice "alice-pw"')
            assert reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "PRIVACYREQUIRED"
    allowed = make_settings(server={"listen": [f"{ip}:0"], "allow_plaintext_login_non_loopback": True})
    async with running_server(allowed) as srv, Client(ip, srv.port) as c:
        await c.login()
        assert isinstance(c.greeting, StatusResponse)


async def test_6_2_1_plaintext_pipelined_after_starttls_is_discarded(tls_settings: object) -> None:
    async with running_server(tls_settings) as srv, srv.client() as c:  # type: ignore[arg-type]
        await c.send(b"s1 STARTTLS\r\ns2 LOGIN alice alice-pw\r\n")
        ok = await c.next_response()
        assert isinstance(ok, StatusResponse) and ok.tag == "s1" and ok.status == "OK"
        await c.writer.start_tls(_client_ctx())
        reply = await c.cmd("NOOP")  # the injected LOGIN never ran: no s2 reply, still not logged in
        assert reply.ok and all(getattr(r, "tag", None) != "s2" for r in reply.untagged)
        assert (await c.cmd('LIST "" *')).status == "BAD"
