"""A private Mosquitto MQTT broker for tests and benchmarks (`tests.support` re-exports it).

The only Mosquitto launcher in the tree (`cpmsync demo` uses a running broker and starts none).

One broker per use, on a free 127.0.0.1 port, anonymous access, persistence off by default, so
retained messages and sessions never leak between tests (the shared broker on :1883 is left alone).
`stop()` then `start()` brings it back on the same port, for broker-down tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from tests.support.ports import free_port
from tests.support.processes import PrivateServer, scratch_dir, start_process, stop_process, tail

__all__ = [
    "MOSQUITTO_BIN",
    "MosquittoBroker",
    "MosquittoError",
    "MosquittoMissingError",
    "mosquitto_available",
]

MOSQUITTO_BIN = os.environ.get("CPMSYNC_TEST_MOSQUITTO", shutil.which("mosquitto") or "/usr/sbin/mosquitto")


class MosquittoError(RuntimeError):
    """The broker could not be started; the message carries its log tail."""


class MosquittoMissingError(MosquittoError):
    """The mosquitto binary is not installed."""


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO_BIN, os.X_OK)


class MosquittoBroker(PrivateServer):
    """`with MosquittoBroker() as b:` → a broker on b.host:b.port (MQTT 3.1.1 and 5).

    persistence: keep sessions/retained messages in the private dir across stop()/start()
    (off by default: a restart then behaves like a broker that lost its state).
    extra_conf: appended to mosquitto.conf verbatim.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        tmp_dir: Path | str | None = None,
        persistence: bool = False,
        extra_conf: str = "",
        start_timeout_s: float = 10.0,
    ) -> None:
        if not mosquitto_available():
            raise MosquittoMissingError(
                f"mosquitto is required but {MOSQUITTO_BIN} is missing: install it with "
                "`apt-get install mosquitto` (CI installs it), or set CPMSYNC_TEST_MOSQUITTO."
            )
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.start_timeout_s = start_timeout_s
        self._own_tmp = tmp_dir is None
        self.root = scratch_dir("cpmsync-mosquitto-") if tmp_dir is None else Path(tmp_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.root / "mosquitto.conf"
        self.log_path = self.root / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        lines = [
            "# Written by tests.support.mosquitto for one private broker.",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.root}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Mosquitto drops root to the `mosquitto` user, which could not write our private dir.
            lines.append("user root")
        lines.append(self.extra_conf)
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self) -> Self:
        """Start (or restart, same port) and return once the port accepts MQTT connections."""
        if self.running:
            return self
        self._write_conf()
        self._proc = start_process([MOSQUITTO_BIN, "-c", str(self.conf_path)], self.log_path)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise MosquittoError(f"mosquitto exited with {code} during start-up:\n{tail(self.log_path)}")
            if _mqtt_ping(self.host, self.port):
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise MosquittoError(
                    f"mosquitto did not answer on {self.host}:{self.port} "
                    f"within {self.start_timeout_s:g} s:\n{tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait: the broker says goodbye to its clients' sockets and exits."""
        if self._proc is not None:
            self.resume()
            stop_process(self._proc, timeout_s=timeout_s)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing anything cleanly (a crash)."""
        if self._proc is not None:
            stop_process(self._proc, kill=True)
            self._proc = None

    def pause(self) -> None:
        """SIGSTOP: the broker hangs with its sockets open (a stalled broker, not a down one)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self.port}, {'running' if self.running else 'stopped'})"


# MQTT 3.1.1 CONNECT, clean session, keep-alive 5 s, client id "cpmsync-probe".
_CONNECT = (
    bytes([0x10, 0x19, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x05, 0x00, 0x0D]) + b"cpmsync-probe"
)
_DISCONNECT = bytes([0xE0, 0x00])


def _mqtt_ping(host: str, port: int) -> bool:
    """True once the broker answers a CONNECT with a CONNACK (an open port alone is not ready)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(_CONNECT)
            reply = s.recv(4)
            if len(reply) >= 2 and reply[0] == 0x20:
                s.sendall(_DISCONNECT)
                return True
    except OSError:
        pass
    return False
