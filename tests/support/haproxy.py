"""A private HAProxy (Debian package `haproxy`) in front of msgstore instances, for tests and benches.

TCP mode on a free loopback port, with the settings config/haproxy-msgstore.cfg gives an operator
(IMAP health check on the greeting, `option redispatch`, connections cut when their instance is
marked down, long timeouts for IDLE), but quick checks so a test sees a dead instance within a
second. `balance` is HAProxy's: "leastconn" as in production; "first" fills the first live server
first, so a test knows where a new client lands.

    with HaproxyFront([(host, port_a), (host, port_b)], balance="first") as lb:
        ...  # lb.port
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from tests.support.ports import free_port
from tests.support.processes import Managed, scratch_dir, start_process, stop_process, tail

__all__ = ["HAPROXY_BIN", "HaproxyError", "HaproxyFront", "check_config"]

HAPROXY_BIN = os.environ.get("CPMSYNC_TEST_HAPROXY", shutil.which("haproxy") or "/usr/sbin/haproxy")


class HaproxyError(RuntimeError):
    """HAProxy is missing, refused its configuration or did not start; the message says which."""


def _require() -> None:
    if not os.access(HAPROXY_BIN, os.X_OK):
        raise HaproxyError(
            f"haproxy is required but {HAPROXY_BIN} is missing: `apt-get install haproxy` "
            "(CI installs it), or set CPMSYNC_TEST_HAPROXY"
        )


def check_config(path: Path) -> str:
    """`haproxy -c -f path`: its output; HaproxyError when HAProxy refuses the file."""
    _require()
    r = subprocess.run([HAPROXY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise HaproxyError(f"haproxy -c {path}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


class HaproxyFront(Managed):
    """One HAProxy process balancing `backends` (host, port) on 127.0.0.1:`port`."""

    def __init__(
        self,
        backends: Sequence[tuple[str, int]],
        *,
        balance: str = "leastconn",
        check_interval_ms: int = 200,
        start_timeout_s: float = 10.0,
    ) -> None:
        _require()
        self.backends = list(backends)
        self.balance = balance
        self.check_interval_ms = check_interval_ms
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.dir = scratch_dir("cpmsync-haproxy-")
        self.conf_path = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self.stats_socket = self.dir / "stats.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        servers = "\n".join(f"    server s{i} {h}:{p} check" for i, (h, p) in enumerate(self.backends))
        return f"""# Written by tests.support.haproxy (production example: config/haproxy-msgstore.cfg).
global
    log stdout format raw local0 info
    stats socket {self.stats_socket} mode 600 level admin

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 31m
    timeout server 31m
    option redispatch
    retries 2

frontend imap
    bind {self.host}:{self.port}
    default_backend msgstore

backend msgstore
    balance {self.balance}
    option tcp-check
    tcp-check expect rstring ^\\*\\ OK
    default-server inter {self.check_interval_ms}ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}
"""

    def start(self) -> Self:
        """Start and return once HAProxy hands a client an instance's greeting."""
        self.conf_path.write_text(self.config_text())
        check_config(self.conf_path)
        self._proc = start_process([HAPROXY_BIN, "-db", "-f", str(self.conf_path)], self.log_path)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._greets():
            if self._proc.poll() is not None:
                raise HaproxyError(f"haproxy exited with {self._proc.returncode}: {tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise HaproxyError(f"no greeting through haproxy after {self.start_timeout_s:g} s")
            time.sleep(0.05)
        return self

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                return s.recv(5).startswith(b"* OK")
        except OSError:
            return False

    def server_states(self) -> dict[str, str]:
        """{server name: "UP" / "DOWN" ...} from HAProxy's stats socket (what an operator watches)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        header, *rows = data.decode().splitlines()
        cols = header.lstrip("# ").split(",")
        out = {}
        for row in rows:
            rec = dict(zip(cols, row.split(","), strict=False))
            if rec.get("pxname") == "msgstore" and rec.get("svname", "").startswith("s"):
                out[rec["svname"]] = rec.get("status", "")
        return out

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def close(self) -> None:
        """Stop and delete the private directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
