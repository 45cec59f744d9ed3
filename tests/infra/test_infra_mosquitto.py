"""Private Mosquitto brokers: isolated from each other, restartable on the same port, killable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiomqtt
import pytest

from tests.support import MosquittoBroker, port_open

V5 = aiomqtt.ProtocolVersion.V5


async def _retained(broker: MosquittoBroker, topic: str) -> bytes | None:
    """The retained payload on `topic`, or None once a marker we publish after subscribing comes back."""
    async with aiomqtt.Client(broker.host, broker.port, protocol=V5) as client:
        await client.subscribe(topic)
        await client.subscribe("probe/done")
        await client.publish("probe/done", b"x")
        async with asyncio.timeout(10):
            async for message in client.messages:
                if message.topic.matches("probe/done"):
                    return None
                if message.retain:
                    assert isinstance(message.payload, bytes)
                    return message.payload
    return None


async def test_a_retained_message_stays_on_its_own_broker(
    mqtt_broker_factory: Callable[..., MosquittoBroker],
) -> None:
    one, two = mqtt_broker_factory(), mqtt_broker_factory()
    assert one.port != two.port
    async with aiomqtt.Client(one.host, one.port, protocol=V5) as client:
        await client.publish("cpm/acct/status", b"online", qos=1, retain=True)
    assert await _retained(one, "cpm/acct/status") == b"online"
    assert await _retained(two, "cpm/acct/status") is None


async def test_stop_then_start_serves_again_on_the_same_port(mqtt_broker: MosquittoBroker) -> None:
    port = mqtt_broker.port
    mqtt_broker.stop()
    assert not port_open(mqtt_broker.host, port)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(mqtt_broker.host, port, protocol=V5, timeout=2):
            pass
    mqtt_broker.start()
    assert mqtt_broker.port == port
    async with aiomqtt.Client(mqtt_broker.host, port, protocol=V5) as client:
        await client.publish("t", b"back", qos=1)


async def test_without_persistence_a_restart_forgets_retained_messages(mqtt_broker: MosquittoBroker) -> None:
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=V5) as client:
        await client.publish("cpm/a/status", b"online", qos=1, retain=True)
    mqtt_broker.restart()
    assert await _retained(mqtt_broker, "cpm/a/status") is None


async def test_with_persistence_a_restart_keeps_retained_messages(
    mqtt_broker_factory: Callable[..., MosquittoBroker],
) -> None:
    broker = mqtt_broker_factory(persistence=True)
    async with aiomqtt.Client(broker.host, broker.port, protocol=V5) as client:
        await client.publish("cpm/a/status", b"online", qos=1, retain=True)
    broker.restart()
    assert await _retained(broker, "cpm/a/status") == b"online"


def test_kill_takes_the_broker_down_at_once(mqtt_broker: MosquittoBroker) -> None:
    mqtt_broker.kill()
    assert not mqtt_broker.running
    assert not port_open(mqtt_broker.host, mqtt_broker.port)
