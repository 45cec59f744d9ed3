"""MQTT credentials and TLS come from the config: a private mosquitto with TLS and a password file."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_mqtt_helpers import BROKER_CONF, Collector, mqtt_settings, open_cache, produce, wait_for

from cpmsync.daemon.publisher import Publisher
from cpmsync.msgstore.tls_cert import make_self_signed
from tests.support import free_port
from tests.support.fixtures import start_broker_or_fail


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, CA cert) of a TLS listener that wants a password, on the shared launcher. Its own
    plaintext listener only serves the launcher's readiness probe (it accepts no login either)."""
    cert, key = make_self_signed(tmp_path / "tls")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "daemon", "s3cret pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "app", "app-pass"], check=True)
    tls_port = free_port()
    conf = [
        BROKER_CONF,
        "allow_anonymous false",  # global (per_listener_settings false): both listeners
        f"password_file {passwd}",
        f"listener {tls_port} 127.0.0.1",
        f"certfile {cert}",
        f"keyfile {key}",
    ]
    b = start_broker_or_fail(extra_conf="\n".join(conf))
    try:
        yield tls_port, cert
    finally:
        b.close()


async def test_password_and_tls_from_settings(secure_broker: tuple[int, Path], tmp_path: Path) -> None:
    port, cert = secure_broker
    pw_file = tmp_path / "mqtt.password"
    pw_file.write_text("s3cret pass\n")
    settings = mqtt_settings(port, tls=True, ca_file=cert, username="daemon", password_file=pw_file)
    ctx = ssl.create_default_context(cafile=str(cert))
    col = Collector(
        port,
        ["cpm/sec/folders/+/events"],
        client_id="sec-sub",
        username="app",
        password="app-pass",
        tls_context=ctx,
    )
    cache = open_cache(tmp_path / "c.sqlite", "sec")
    pub = Publisher(settings, "sec", cache)
    produce(cache, "INBOX", 1, 2)
    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(col.run())
        await col.subscribed.wait()
        tg.create_task(pub.run())
        await col.wait_until(lambda m: len(col.events()) == 3)
        assert [e["kind"] for e in col.events()] == ["folder_added", "message_added", "message_added"]
        await pub.close()
        sub.cancel()


async def test_wrong_password_keeps_events_and_logs_once(
    secure_broker: tuple[int, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, cert = secure_broker
    settings = mqtt_settings(port, tls=True, ca_file=cert, username="daemon", password="wrong")
    cache = open_cache(tmp_path / "c.sqlite", "bad")
    pub = Publisher(settings, "bad", cache)
    produce(cache, "INBOX", 1, 2)
    caplog.set_level(logging.DEBUG, logger="cpmsync")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        await wait_for(lambda: sum("mqtt broker unavailable" in r.getMessage() for r in caplog.records) >= 3)
        await pub.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, retries at debug
    assert cache.outbox_count() == 4  # nothing dropped
    assert "wrong" not in caplog.text  # the password never reaches a log


async def test_untrusted_certificate_is_refused(
    secure_broker: tuple[int, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, _cert = secure_broker
    other, _ = make_self_signed(tmp_path / "other")
    settings = mqtt_settings(port, tls=True, ca_file=other, username="daemon", password="s3cret pass")
    cache = open_cache(tmp_path / "c.sqlite", "mitm")
    pub = Publisher(settings, "mitm", cache)
    produce(cache, "INBOX", 1, 1)
    async with asyncio.TaskGroup() as tg:
        caplog.set_level(logging.WARNING, logger="cpmsync")
        tg.create_task(pub.run())
        await wait_for(lambda: any("certificate verify failed" in str(r.__dict__) for r in caplog.records))
        assert not pub.connected
        await pub.close()
    assert cache.outbox_count() == 3
