"""Fixtures for the daemon tests: a private Mosquitto per test module (or per test when it is
stopped and restarted), so retained messages and sessions never leak between tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_mqtt_helpers import Broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One private broker for the whole test module."""
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Make brokers a test may stop, kill and restart; all are stopped afterwards."""
    made: list[Broker] = []

    def make(*, persistent: bool = False, start: bool = True) -> Broker:
        d = tmp_path / f"broker{len(made)}"
        d.mkdir()
        b = Broker(d, persistent=persistent)
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in made:
        if b.proc is not None and b.proc.poll() is None:
            os.kill(b.proc.pid, signal.SIGCONT)
        b.stop(signal.SIGKILL)
