"""The MQTT broker the demo talks to: one that already runs (127.0.0.1:1883 unless --broker names another).

The daemon publishes with MQTT v5 (persistent sessions, message expiry), so the probe is a real
v5 CONNECT, not an open port. The demo starts no broker of its own: without one it says how to get
one and stops before starting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import aiomqtt

__all__ = ["Broker", "BrokerUnavailable", "probe_mqtt_v5", "require_broker"]

PROBE_TIMEOUT_S = 2.0


class BrokerUnavailable(RuntimeError):
    """No MQTT v5 broker answers at the address the demo was given."""


@dataclass(frozen=True)
class Broker:
    """A broker that answered an MQTT v5 CONNECT."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


async def probe_mqtt_v5(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True if host:port accepts an MQTT v5 CONNECT within `timeout_s`."""
    client = aiomqtt.Client(
        host,
        port,
        identifier=f"cpmsync-demo-probe-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=timeout_s,
    )
    with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            async with client:
                return True
    return False


async def require_broker(host: str, port: int) -> Broker:
    """The broker at host:port if it answers MQTT v5; else BrokerUnavailable saying what to do."""
    if await probe_mqtt_v5(host, port):
        return Broker(host, port)
    raise BrokerUnavailable(
        f"no MQTT v5 broker answers on {host}:{port}: start one (`mosquitto -d`, Debian package "
        "mosquitto) or pass --broker HOST:PORT"
    )
