"""`cpmsync daemon run` imports only what the daemon uses: a daemon restarted at boot or after a
crash pays every import before its first byte (bench_daemon_startup.py prints that CPU). The
plotting and table libraries (numpy, matplotlib, rich) and the other components' code (the
reference server, the simulator, the demo) are for other commands; one import of them at the
top of a module the daemon reaches would put them back on every start, silently."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from daemon_actions_helpers import seed
from daemon_sync_helpers import open_cache_as_reader, wait_until

from tests.support import MosquittoBroker
from tests.support.peers import ImapPeer

NOT_ON_THE_DAEMON_PATH = (
    "numpy",
    "matplotlib",
    "rich",
    "cpmsync.msgstore.",  # but cpmsync.msgstore.cli: the `cpmsync` command registers every component
    "cpmsync.simulator.",
    "cpmsync.demo.",
    "cpmsync.app.",
)
ALLOWED = {"cpmsync.msgstore.cli", "cpmsync.simulator.cli", "cpmsync.demo.cli", "cpmsync.app.cli"}

# The console script's entry, with the process's modules written down when it exits.
_CHILD = (
    "import atexit, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "sys.argv[0] = 'cpmsync'\n"
    "from cpmsync.cli import main\n"
    "main()\n"
)


def _config(path: Path, peer: ImapPeer, mqtt_port: int, cache: Path) -> Path:
    path.write_text(
        f'[account]\nid = "{peer.user}"\n'
        f'[imap]\nhost = "{peer.host}"\nport = {peer.port}\ntls = "none"\nusername = "{peer.user}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        f'[cache]\npath = "{cache}"\n'
    )
    return path


def _daemon_child(config: Path, password: str, modules_file: Path) -> subprocess.Popen[bytes]:
    """`cpmsync daemon run --config ...` as its own process, which lists its modules at exit."""
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(modules_file), "daemon", "run", "--config", str(config)],
        env=dict(os.environ, CPMSYNC_IMAP__PASSWORD=password),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _forbidden(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m not in ALLOWED
        and any(m == p or m.startswith(p if p.endswith(".") else p + ".") for p in NOT_ON_THE_DAEMON_PATH)
    ]


def test_forbidden_names_what_it_should() -> None:
    """The check itself: a package and its submodules match, a component's CLI module does not."""
    assert _forbidden(["numpy", "numpy.linalg", "richer", "rich.console", "cpmsync.msgstore.store"]) == [
        "numpy",
        "numpy.linalg",
        "rich.console",
        "cpmsync.msgstore.store",
    ]
    assert _forbidden(["cpmsync.msgstore.cli", "cpmsync.msgstore", "cpmsync.daemon.sync"]) == []


async def test_daemon_run_imports_none_of_the_other_commands_libraries(
    imap_peer: ImapPeer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    seed(imap_peer, {"chat": 2})  # a sync that fetches, previews and publishes: its lazy imports too
    cache_path = tmp_path / "c.sqlite"
    config = _config(tmp_path / "daemon.toml", imap_peer, broker.port, cache_path)
    modules_file = tmp_path / "modules.txt"
    proc = _daemon_child(config, imap_peer.password, modules_file)
    try:
        cache = await open_cache_as_reader(cache_path, imap_peer.user)
        try:
            await wait_until(lambda: bool(cache.runs()) and cache.runs()[0].ended is not None)
            await wait_until(lambda: cache.outbox_count() == 0)  # and its events went to the broker
        finally:
            cache.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 30)
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    modules = modules_file.read_text().split()
    assert "cpmsync.daemon.sync" in modules and "sqlalchemy" in modules  # it did run the daemon
    assert _forbidden(modules) == []
