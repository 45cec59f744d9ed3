"""Loopback ports for private test servers.

Every test server gets its own free port so tests (and parallel test runs) never share a peer.
"""

from __future__ import annotations

import socket
import time

__all__ = ["free_port", "port_open", "wait_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (the kernel picks it; a tiny race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout_s: float = 10.0, poll_interval_s: float = 0.02) -> None:
    """Block until host:port accepts a TCP connection; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if port_open(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:g} s")
        time.sleep(poll_interval_s)
