"""sd_notify over a real unix datagram socket, as systemd listens for Type=notify services."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpmsync.daemon import sdnotify


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(addr)
        s.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", addr)
        yield s


def test_ready_watchdog_stopping_reach_a_path_socket(path_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=synced 3 folders")
    assert path_socket.recv(4096) == b"READY=1\nSTATUS=synced 3 folders"
    assert sdnotify.notify("WATCHDOG=1")
    assert path_socket.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.notify("STOPPING=1")
    assert path_socket.recv(4096) == b"STOPPING=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cpmsync-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(b"\0" + name.encode())
        s.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        assert s.recv(4096) == b"READY=1"


def test_no_socket_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.notify("READY=1") is False  # systemd went away: never an exception


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert sdnotify.watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sdnotify.watchdog_interval_s() is None


async def test_watchdog_loop_pings_until_cancelled(path_socket: socket.socket) -> None:
    path_socket.setblocking(False)
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sdnotify.watchdog_loop(interval_s=0.01))
        got = [await loop.sock_recv(path_socket, 4096) for _ in range(3)]
        task.cancel()
    assert got == [b"WATCHDOG=1"] * 3
