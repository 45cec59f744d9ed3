"""The real processes of a soak: the peer (msgstore or Dovecot, seeded), the broker, the daemon.

Each is the program a user runs, in its own process: `cpmsync msgstore serve` on a fresh store,
a private Dovecot, a private Mosquitto (so retained messages never leak from other tests), and
`cpmsync daemon run --config FILE` with the shipped defaults (NOTIFY, debounce, poll interval)
except where it must find the peer and the broker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support import (
    DovecotServer,
    MosquittoBroker,
    free_port,
    port_open,
    run_cli,
    seed_dovecot,
    seed_imap,
)
from tests.support.cli_run import cli_command
from tests.support.msgstore_cluster import MsgstoreInstance, PgSchema
from tests.support.peers import ImapPeer
from tests.support.processes import scratch_dir, start_process, stop_process, tail

__all__ = ["ALL_PEERS", "CLUSTER_PEER", "PEERS", "Daemon", "Peer", "start_broker", "start_peer"]

PEERS = ("msgstore", "dovecot")
# Two msgstore instances on one PostgreSQL schema: the daemon on one, the change stream (and the
# snapshot the verdict compares with) on the other, so every change reaches the daemon by
# cross-instance push (issue 14). One short run in tests/daemon/test_soak.py, long ones in the bench.
CLUSTER_PEER = "msgstore-2"
ALL_PEERS = (*PEERS, CLUSTER_PEER)
USER, PASSWORD = "soak", "soak-pw"

# As the README asks of a device broker whose apps must see every event: no queue limit, sessions
# and retained messages kept across a restart, PUBACKs not held by Nagle.
BROKER_CONF = "set_tcp_nodelay true\nmax_queued_messages 0"


def start_broker() -> MosquittoBroker:
    """A private Mosquitto with persistence, so a broker restart keeps sessions (stop()/start())."""
    return MosquittoBroker(persistence=True, extra_conf=BROKER_CONF).start()


class Peer:
    """A seeded IMAP server in its own process; `imap` is where other clients reach it,
    `daemon_imap` where the daemon does (the same server but for CLUSTER_PEER)."""

    def __init__(
        self, name: str, imap: ImapPeer, log_path: Path, closer: object, daemon_imap: ImapPeer | None = None
    ) -> None:
        self.name, self.imap, self.log_path = name, imap, log_path
        self.daemon_imap = daemon_imap or imap
        self._closer = closer

    def log_tail(self, n: int = 4000) -> str:
        return tail(self.log_path, n)

    def log_problems(self, n: int = 20) -> list[str]:
        """The server's own warnings, errors and crashes (Dovecot's `Fatal:`, a msgstore traceback),
        so a failure report shows when the peer, not the daemon, went wrong."""
        marks = ("Warning:", "Error:", "Fatal:", "Panic:", "level=warning", "level=error", "Traceback")
        keep = [ln for ln in tail(self.log_path, 400_000).splitlines() if any(m in ln for m in marks)]
        return keep[-n:]

    def close(self) -> None:
        close = getattr(self._closer, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Msgstore:
    """`cpmsync msgstore serve` on a fresh SQLite store (in /dev/shm when it has room)."""

    def __init__(self) -> None:
        self.root = scratch_dir("cpmsync-soak-msgstore-")
        self.db = f"sqlite:///{self.root / 'store.sqlite'}"
        self.port = free_port()
        self.log_path = self.root / "msgstore.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> _Msgstore:
        added = run_cli(
            ["msgstore", "user", "add", USER, "--password-stdin", "--db", self.db], input=PASSWORD + "\n"
        )
        if added.returncode != 0:
            raise RuntimeError(f"msgstore user add failed: {added.stderr}")
        argv = cli_command(["--log-level", "warning", "msgstore", "serve"])
        self.proc = start_process(
            [*argv, "--listen", f"127.0.0.1:{self.port}", "--db", self.db], self.log_path
        )
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"msgstore exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            if port_open("127.0.0.1", self.port, 0.1):
                return self
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"msgstore did not listen on {self.port}:\n{tail(self.log_path)}")

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=20)
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


class _MsgstorePair:
    """Two `cpmsync msgstore serve` on a fresh schema of the machine's PostgreSQL (CLUSTER_PEER)."""

    def __init__(self) -> None:
        self.schema = PgSchema.fresh(prefix="cpm_soak")
        self.instances: list[MsgstoreInstance] = []

    def start(self) -> _MsgstorePair:
        try:
            added = run_cli(
                ["msgstore", "user", "add", USER, "--password-stdin", "--db", self.schema.url],
                input=PASSWORD + "\n",
            )
            if added.returncode != 0:
                raise RuntimeError(f"msgstore user add failed: {added.stderr}")
            self.instances = [
                MsgstoreInstance(self.schema.url, name=f"soak-{s}") for s in ("daemon", "writers")
            ]
            with ThreadPoolExecutor(len(self.instances)) as pool:  # start both at once
                list(pool.map(MsgstoreInstance.start, self.instances))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for inst in self.instances:
            inst.__exit__(None, None, None)
        self.instances = []
        self.schema.drop()


def start_peer(name: str, folders: int, messages: int, seed: int) -> Peer:
    """Start `name` (one of ALL_PEERS) with one user and seed `folders` x `messages`."""
    if name == "msgstore":
        ms = _Msgstore().start()
        try:
            seed_imap("127.0.0.1", ms.port, USER, PASSWORD, folders, messages, seed=seed)
        except BaseException:
            ms.close()
            raise
        return Peer(name, ImapPeer(name, "127.0.0.1", ms.port, USER, PASSWORD), ms.log_path, ms)
    if name == CLUSTER_PEER:
        pair = _MsgstorePair().start()
        for_daemon, for_writers = pair.instances
        try:
            seed_imap("127.0.0.1", for_writers.port, USER, PASSWORD, folders, messages, seed=seed)
        except BaseException:
            pair.close()
            raise
        return Peer(
            name,
            ImapPeer(name, "127.0.0.1", for_writers.port, USER, PASSWORD),
            for_daemon.log,
            pair,
            daemon_imap=ImapPeer(name, "127.0.0.1", for_daemon.port, USER, PASSWORD),
        )
    if name == "dovecot":
        dv = DovecotServer(users={USER: PASSWORD}).start()
        try:
            seed_dovecot(dv, USER, folders, messages, seed=seed)
        except BaseException:
            dv.close()
            raise
        return Peer(name, ImapPeer(name, dv.host, dv.port, USER, PASSWORD), dv.log_path, dv)
    raise ValueError(f"unknown peer {name!r}; one of {ALL_PEERS}")


@dataclass
class DaemonConfig:
    """What the soak sets in the daemon's TOML; everything else is config/daemon.toml's default."""

    account: str
    imap_host: str
    imap_port: int
    username: str
    mqtt_port: int
    cache_path: Path
    notify_poll_interval_s: float = 0.0  # only for a peer whose NOTIFY is known to lose events
    log_level: str = "info"
    compress: bool = True  # off for a readable wire capture (CPMSYNC_SOAK_KEEP)

    def toml(self) -> str:
        # No interval, debounce or backoff is changed (but the documented NOTIFY safety poll for a
        # peer that needs it): a loss that only a shortened poll would repair must show as a loss.
        poll = ""
        if self.notify_poll_interval_s:
            poll = f"notify_poll_interval_s = {self.notify_poll_interval_s:g}\n"
        return (
            f'[account]\nid = "{self.account}"\n'
            f'[imap]\nhost = "{self.imap_host}"\nport = {self.imap_port}\ntls = "none"\n'
            f'username = "{self.username}"\n{poll}'
            + ("" if self.compress else "compress = false\n")
            + f'[mqtt]\nhost = "127.0.0.1"\nport = {self.mqtt_port}\n'
            f'[cache]\npath = "{self.cache_path}"\n'
        )


class Daemon:
    """`cpmsync daemon run --config FILE` as a process, as a device runs it (log kept for the report)."""

    def __init__(self, config: DaemonConfig, password: str, workdir: Path) -> None:
        self.config = config
        self.password = password
        self.config_path = workdir / "daemon.toml"
        self.config_path.write_text(config.toml())
        self.log_path = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        argv = cli_command(
            ["--log-level", self.config.log_level, "daemon", "run", "--config", str(self.config_path)]
        )
        with self.log_path.open("ab") as log:
            log.write(f"----- daemon start {self.starts + 1}\n".encode())
        env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=self.password)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown path runs (a crash, a device losing power)."""
        if self.proc is not None:
            stop_process(self.proc, kill=True)
            self.proc = None
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=30)
            self.proc = None

    def log_problems(self, n: int = 40) -> list[str]:
        """The daemon's last warnings and errors (and tracebacks), for a failure report."""
        lines = tail(self.log_path, 400_000).splitlines()
        marks = ("level=warning", "level=error", "level=critical", "Traceback", "----- daemon")
        keep = [ln for ln in lines if any(w in ln for w in marks)]
        return keep[-n:]
