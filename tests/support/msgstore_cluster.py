"""Several `cpmsync msgstore serve` processes on one PostgreSQL database, for tests and benchmarks.

Each run gets a schema of its own (`PgSchema`), so runs on a shared database never see each other's
users, tables or NOTIFY channel; each instance is the real CLI in its own process group, on a free
loopback port, logging to a file the caller can read (`MsgstoreInstance.log`).

    with PgSchema.fresh() as schema, MsgstoreInstance(schema.url) as a, MsgstoreInstance(schema.url) as b:
        ...  # a.port, b.port; a.kill() is SIGKILL
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from cpmsync.msgstore import MessageStore
from tests.support.cli_run import cli_command
from tests.support.ports import free_port
from tests.support.processes import scratch_dir, start_process, stop_process, tail

__all__ = ["DEFAULT_PG_URL", "MsgstoreInstance", "PgSchema", "pg_store"]

# The machine's PostgreSQL (trust authentication, database `test`).
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class PgSchema:
    """A schema created for one run and dropped (with everything in it) afterwards."""

    def __init__(self, base_url: str, name: str) -> None:
        self.base_url = base_url
        self.name = name
        sep = "&" if "?" in base_url else "?"
        self.url = f"{base_url}{sep}options={quote(f'-csearch_path={name}', safe='')}"

    @classmethod
    def fresh(cls, base_url: str = DEFAULT_PG_URL, prefix: str = "cpm_mi") -> PgSchema:
        schema = cls(base_url, f"{prefix}_{uuid.uuid4().hex[:10]}")
        schema._execute(f'CREATE SCHEMA "{schema.name}"')
        return schema

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            self.base_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as c:
            c.execute(statement.encode())  # names made here, not user input

    def drop(self) -> None:
        self._execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drop()


@contextlib.contextmanager
def pg_store(base_url: str = DEFAULT_PG_URL, prefix: str = "cpm_store") -> Iterator[tuple[MessageStore, str]]:
    """A MessageStore on a fresh schema of the machine's PostgreSQL and a user in it (password
    "pw"); the schema is dropped afterwards. A server that is not there fails, never skips."""
    with PgSchema.fresh(base_url.replace("postgresql://", "postgresql+psycopg://"), prefix) as schema:
        store = MessageStore(schema.url)
        user = f"u{uuid.uuid4().hex[:12]}"
        store.add_user(user, "pw")
        try:
            yield store, user
        finally:
            store.close()


class MsgstoreInstance:
    """`cpmsync msgstore serve --db URL` as an operator runs it; `start()` returns once it is ready
    (its listener connected, when the URL is PostgreSQL)."""

    def __init__(self, db_url: str, *, name: str = "msgstore", extra_args: Sequence[str] = ()) -> None:
        self.db_url = db_url
        self.name = name
        self.extra_args = list(extra_args)
        self.port = 0
        self.dir = scratch_dir(f"cpmsync-{name}-")
        self.log = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 30.0) -> Self:
        self.port = free_port()
        self.log.write_bytes(b"")
        argv = cli_command(
            ["msgstore", "serve", "--listen", f"127.0.0.1:{self.port}", "--db", self.db_url, *self.extra_args]
        )
        self.proc = start_process(argv, self.log)
        deadline = time.monotonic() + timeout_s
        while "msgstore ready on" not in self.log_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} not ready after {timeout_s:g} s: {tail(self.log)}")
            time.sleep(0.05)
        return self

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def listener_backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of this instance's LISTEN connections so far (latest last)."""
        text = self.log_text()
        return [int(m) for m in re.findall(r'"PostgreSQL listener ready".*?backend_pid=(\d+)', text)]

    def kill(self) -> None:
        """SIGKILL: no BYE, no cleanup, as when the machine or the process dies."""
        if self.proc is not None:
            stop_process(self.proc, kill=True)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        _remove_tree(self.dir)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
