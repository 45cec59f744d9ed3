"""`cpmsync msgstore serve` as a user runs it: a subprocess that logs one line when ready, serves
third-party clients, and on SIGTERM says BYE to connected clients and exits 0."""

from __future__ import annotations

import imaplib
import signal
import subprocess
import time
from pathlib import Path

from tests.support import free_port, run_cli
from tests.support.cli_run import cli_command


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float = 20) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "msgstore ready on" in line:
            return line
    raise AssertionError(f"server not ready: {''.join(lines)}")


def test_serve_subprocess_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    added = run_cli(["msgstore", "user", "add", "alice", "--password-stdin", "--db", db], input="s3cret\n")
    assert added.returncode == 0, added.stderr
    port = free_port()
    proc = subprocess.Popen(
        cli_command(["msgstore", "serve", "--listen", f"127.0.0.1:{port}", "--db", db]),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready = _wait_ready(proc)
        assert f"127.0.0.1:{port}" in ready and ready.count("\n") == 1
        m = imaplib.IMAP4("127.0.0.1", port)
        assert m.login("alice", "s3cret")[0] == "OK"
        assert m.create("Default")[0] == "OK"
        assert m.append("Default", None, None, b"Subject: hi\r\n\r\nhello\r\n")[0] == "OK"
        assert m.select("Default") == ("OK", [b"1"])
        proc.send_signal(signal.SIGTERM)
        data = m.sock.recv(4096)
        assert data.startswith(b"* BYE")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # what the client was told OK about is on disk: a fresh process sees it
    listed = run_cli(["msgstore", "user", "list", "--db", db])
    assert listed.stdout.split() == ["alice"]


def test_serve_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    import socket

    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_cli(["msgstore", "serve", "--listen", f"127.0.0.1:{port}", "--db", db], timeout_s=30)
    assert res.returncode == 2
    assert "cannot listen" in res.stderr and "Traceback" not in res.stderr


def test_serve_bad_listen_argument(tmp_path: Path) -> None:
    res = run_cli(["msgstore", "serve", "--listen", "nonsense", "--db", f"sqlite:///{tmp_path}/s.sqlite"])
    assert res.returncode == 2 and "--listen" in res.stderr and "Traceback" not in res.stderr
