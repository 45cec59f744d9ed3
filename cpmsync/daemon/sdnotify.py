"""systemd's sd_notify protocol without a dependency: one datagram per state change.

`NOTIFY_SOCKET` is a filesystem path or, when it starts with `@`, a Linux abstract socket.
When it is unset (not under systemd) every call is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket

__all__ = ["notify", "watchdog_interval_s", "watchdog_loop"]


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def notify(*states: str) -> bool:
    """Send e.g. `notify("READY=1")`; False when not under systemd or the socket is gone."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target or not states:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(target))
            sock.sendall("\n".join(states).encode())
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the WatchdogSec systemd asked for (its advice), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


async def watchdog_loop(interval_s: float | None = None) -> None:
    """Ping WATCHDOG=1 until cancelled; returns at once when there is no watchdog."""
    interval = interval_s if interval_s is not None else watchdog_interval_s()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
