"""Which MQTT broker the demo talks to: the configured one if it answers MQTT v5, else a private one.

The daemon publishes with MQTT v5 (persistent sessions, message expiry), so the probe is a real
v5 CONNECT, not an open port. amqtt, the pure-Python broker, speaks MQTT 3.1.1 only (it refuses a
v5 CONNECT with "Unsupported protocol version"), so the embedded broker is a private Mosquitto
started through `cpmsync.demo.mosquitto.MosquittoBroker` (its own process group, stopped on every exit path).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiomqtt

if TYPE_CHECKING:
    from cpmsync.demo.mosquitto import MosquittoBroker

__all__ = ["BrokerChoice", "BrokerUnavailable", "choose_broker", "probe_mqtt_v5"]

PROBE_TIMEOUT_S = 2.0


class BrokerUnavailable(RuntimeError):
    """Neither the configured broker nor an embedded one can be used."""


@dataclass
class BrokerChoice:
    """The broker in use; `embedded` is set when the demo started it (and must stop it)."""

    host: str
    port: int
    kind: str  # "configured" or "embedded mosquitto"
    embedded: MosquittoBroker | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        if self.embedded is None:
            return f"the MQTT broker at {self.address} (it answered an MQTT v5 CONNECT)"
        return f"an embedded Mosquitto on {self.address} (pid {self.embedded.pid})"

    def close(self) -> None:
        """Stop the embedded broker (no-op for a configured one)."""
        if self.embedded is not None:
            self.embedded.close()
            self.embedded = None


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


async def choose_broker(host: str, port: int) -> tuple[BrokerChoice, str | None]:
    """The configured broker if it answers, else a private Mosquitto; returns (choice, why-not-configured)."""
    if await probe_mqtt_v5(host, port):
        return BrokerChoice(host, port, "configured"), None
    why = f"no MQTT v5 broker answers at {host}:{port}"
    from cpmsync.demo.mosquitto import MosquittoBroker, MosquittoError

    try:
        # Started synchronously (~50 ms): a cancellation can then never orphan the process.
        broker = MosquittoBroker().start()
    except MosquittoError as e:
        raise BrokerUnavailable(
            f"{why}, and no embedded broker could be started: {str(e).splitlines()[0]} "
            "(amqtt is not usable: it speaks MQTT 3.1.1 only, the daemon needs MQTT v5)"
        ) from None
    return BrokerChoice(broker.host, broker.port, "embedded mosquitto", broker), why
