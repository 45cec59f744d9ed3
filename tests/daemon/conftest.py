"""Fixtures for the daemon tests: one private Mosquitto per test module (retained messages and
sessions never leak between modules; client ids and topics are unique per test within one).
Brokers a test stops, kills or pauses come from the shared `mqtt_broker_factory` (tests/conftest.py)
with `extra_conf=BROKER_CONF`; the launcher is tests.support.mosquitto.MosquittoBroker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daemon_mqtt_helpers import BROKER_CONF

from tests.support import MosquittoBroker
from tests.support.fixtures import start_broker_or_fail


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    """One private broker for the whole test module (start-up cost paid once)."""
    b = start_broker_or_fail(extra_conf=BROKER_CONF)
    try:
        yield b
    finally:
        b.close()
