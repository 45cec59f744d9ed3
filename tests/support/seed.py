"""Fill an IMAP account with CPM-like data, fast, for tests and benchmarks.

Names, messages and flags come from `cpmsync.cpmdata`, the generator `msgstore seed`, the demo and
the simulator use too, so every server and model sees the same account shape. The data is a pure
function of `seed` (dates count from a fixed epoch), so a bench can seed Dovecot and the msgstore
identically and compare them on the same content.

Speed comes from pipelining over raw sockets: every CREATE/APPEND is sent without waiting
(APPEND uses LITERAL+ non-synchronising literals), the tagged replies are counted afterwards.
Against Dovecot, folders are created with doveadm instead (see `DovecotServer.create_mailboxes`).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cpmsync.cpmdata import OWNER, folder_message, folder_names, message_flags, message_time
from tests.support.dovecot import DovecotServer

__all__ = [
    "SeedError",
    "SeedResult",
    "cpm_folder_names",
    "cpm_message",
    "imap_quote",
    "seed_dovecot",
    "seed_imap",
]

_SEED_EPOCH = datetime(2026, 4, 1, tzinfo=UTC)
"""Seeded dates count back from here (not from now), so two seedings are byte-identical."""


class SeedError(RuntimeError):
    """The server refused a CREATE/APPEND/LOGIN while seeding; the message quotes its reply."""


@dataclass
class SeedResult:
    """What was seeded and how long each phase took (seconds, wall clock)."""

    user: str
    folders: list[str]
    messages: int
    create_s: float = 0.0
    append_s: float = 0.0
    warm_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.create_s + self.append_s + self.warm_s


def cpm_folder_names(n: int, seed: int = 0) -> list[str]:
    """`n` distinct CPM conversation folder names, `Default` first, parents before children."""
    return folder_names(max(0, n), random.Random(seed))


def cpm_message(rng: random.Random, folder: str, index: int = 0, owner: str = OWNER) -> bytes:
    """One incoming CPM chat message in `folder` (RFC 5322, CRLF), a few hundred bytes to a few KB.

    `index` is kept for callers that number their messages; the content depends on `rng` only.
    """
    return folder_message(rng, folder, message_time(rng, _SEED_EPOCH), owner, incoming=True)


def imap_quote(s: str) -> str:
    """An IMAP quoted string (RFC 3501 quoted-specials escaped)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _internal_date(when: datetime) -> str:
    return when.strftime("%d-%b-%Y %H:%M:%S +0000")


class _Pipeline:
    """One logged-in raw IMAP connection that sends commands without waiting for replies."""

    def __init__(self, host: str, port: int, user: str, password: str, timeout_s: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.reader = self.sock.makefile("rb")
        greeting = self.reader.readline()
        if not greeting.startswith(b"* OK"):
            raise SeedError(f"unexpected greeting {greeting!r}")
        self.sock.sendall(f"L1 LOGIN {imap_quote(user)} {imap_quote(password)}\r\n".encode())
        self.capabilities = b""
        while True:
            line = self.reader.readline()
            if not line:
                raise SeedError("connection closed during LOGIN")
            if line.startswith(b"L1 "):
                if not line.startswith(b"L1 OK"):
                    raise SeedError(f"LOGIN refused: {line!r}")
                self.capabilities = line.upper()
                break
            if line.startswith(b"* CAPABILITY"):
                self.capabilities = line.upper()
        if b"LITERAL+" not in self.capabilities:
            self.sock.sendall(b"L2 CAPABILITY\r\n")
            for line in self._until(b"L2 "):
                if line.startswith(b"* CAPABILITY"):
                    self.capabilities = line.upper()
        self.literal_plus = b"LITERAL+" in self.capabilities

    def _until(self, tag: bytes) -> Iterator[bytes]:
        while True:
            line = self.reader.readline()
            if not line:
                raise SeedError("connection closed while seeding")
            yield line
            if line.startswith(tag):
                return

    def run(self, commands: Sequence[bytes]) -> None:
        """Send all (tagged `S<n>`) commands from a writer thread; fail on the first non-OK reply."""
        if not commands:
            return
        error: list[BaseException] = []

        def write() -> None:
            try:
                self.sock.sendall(b"".join(commands))
            except OSError as e:  # the reader sees the close and reports it
                error.append(e)

        writer = threading.Thread(target=write, name="imap-seed-writer", daemon=True)
        writer.start()
        done = 0
        try:
            while done < len(commands):
                line = self.reader.readline()
                if not line:
                    raise SeedError(f"connection closed after {done}/{len(commands)} commands")
                if line.startswith(b"S"):
                    done += 1
                    if b" OK" not in line[:20]:
                        raise SeedError(f"server refused: {line.decode('utf-8', 'replace').strip()}")
        finally:
            writer.join(timeout=60)
        if error:
            raise SeedError(f"write failed: {error[0]}")

    def run_synchronising(self, parts: Sequence[tuple[bytes, bytes]]) -> None:
        """APPEND without LITERAL+: wait for the server's "+" before each literal."""
        for i, (head, literal) in enumerate(parts):
            tag = f"S{i}".encode()
            self.sock.sendall(tag + b" " + head + b" {%d}\r\n" % len(literal))
            line = self.reader.readline()
            if not line.startswith(b"+"):
                raise SeedError(f"APPEND refused: {line!r}")
            self.sock.sendall(literal + b"\r\n")
            for reply in self._until(tag + b" "):
                if reply.startswith(tag + b" ") and not reply.startswith(tag + b" OK"):
                    raise SeedError(f"APPEND refused: {reply!r}")

    def close(self) -> None:
        try:
            self.sock.sendall(b"L9 LOGOUT\r\n")
        except OSError:
            pass
        self.reader.close()
        self.sock.close()


def _append_parts(
    folders: Sequence[str], messages_per_folder: int, seed: int
) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """Per folder: (folder, [(APPEND head without literal, message)]) — deterministic in `seed`."""
    out = []
    for folder in folders:
        rng = random.Random(f"{seed}:{folder}")
        items = []
        for _ in range(messages_per_folder):
            when = message_time(rng, _SEED_EPOCH)
            flags = message_flags(rng)
            head = f"APPEND {imap_quote(folder)} ({' '.join(flags)}) {imap_quote(_internal_date(when))}"
            items.append((head.encode(), folder_message(rng, folder, when)))
        out.append((folder, items))
    return out


def _chunks(seq: Sequence[str], n: int) -> list[Sequence[str]]:
    n = max(1, min(n, len(seq)))
    size = -(-len(seq) // n)
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def seed_imap(
    host: str,
    port: int,
    user: str,
    password: str,
    folders: int | Sequence[str],
    messages_per_folder: int = 0,
    *,
    create: bool = True,
    seed: int = 0,
    connections: int = 2,
    timeout_s: float = 120.0,
) -> SeedResult:
    """Seed any IMAP server over the wire: pipelined CREATEs, then pipelined APPENDs.

    `folders` is a count (names from `cpm_folder_names(n, seed)`) or explicit names (parents first).
    Already-existing folders make CREATE fail, so pass `create=False` for those. Appends are spread
    over `connections` parallel sessions; within a folder they arrive in order.
    """
    names = cpm_folder_names(folders, seed) if isinstance(folders, int) else list(folders)
    result = SeedResult(user=user, folders=names, messages=0)
    t0 = time.perf_counter()
    if create and names:
        conn = _Pipeline(host, port, user, password, timeout_s)
        try:
            conn.run([f"S{i} CREATE {imap_quote(n)}\r\n".encode() for i, n in enumerate(names)])
        finally:
            conn.close()
    result.create_s = time.perf_counter() - t0
    if messages_per_folder > 0 and names:
        t1 = time.perf_counter()

        def append_slice(slice_names: Sequence[str]) -> int:
            parts = [p for _, items in _append_parts(slice_names, messages_per_folder, seed) for p in items]
            conn = _Pipeline(host, port, user, password, timeout_s)
            try:
                if conn.literal_plus:
                    conn.run(
                        [
                            b"S%d " % i + head + b" {%d+}\r\n" % len(msg) + msg + b"\r\n"
                            for i, (head, msg) in enumerate(parts)
                        ]
                    )
                else:
                    conn.run_synchronising(parts)
            finally:
                conn.close()
            return len(parts)

        # Same folder → same slice, so per-folder order (and so UID order) is preserved.
        slices = _chunks(names, connections)
        with ThreadPoolExecutor(max_workers=len(slices), thread_name_prefix="imap-seed") as pool:
            result.messages = sum(pool.map(append_slice, slices))
        result.append_s = time.perf_counter() - t1
    return result


def seed_dovecot(
    server: DovecotServer,
    user: str,
    folders: int | Sequence[str] = 100,
    messages_per_folder: int = 0,
    *,
    seed: int = 0,
    connections: int = 2,
    warm: bool = True,
) -> SeedResult:
    """Seed a private Dovecot: doveadm creates the folders (linear time), IMAP appends the messages.

    With `warm`, one LIST-STATUS afterwards makes Dovecot rebuild its mailbox list index, so the
    first LIST a test or bench measures is the steady state, not the rebuild.
    Seed before opening sessions for `user`: its list index is rebuilt at the end.
    10,000 folders take ~4 s; with one message each ~10 s (tmpfs, 2 cores).
    """
    names = cpm_folder_names(folders, seed) if isinstance(folders, int) else list(folders)
    t0 = time.perf_counter()
    server.create_mailboxes(user, [n for n in names if n.upper() != "INBOX"])
    create_s = time.perf_counter() - t0
    # With its mailbox list index on, Dovecot rewrites the index on every APPEND to another folder:
    # 8,000 folders × 1 message took 28 s, without it 3.5 s. So the seeding sessions log in as a
    # bulk login without it, and the (rebuildable) list index is dropped afterwards so the next
    # session rebuilds it with every new folder in it.
    try:
        result = seed_imap(
            server.host,
            server.port,
            server.bulk_login(user),
            server.password(user),
            names,
            messages_per_folder,
            create=False,
            seed=seed,
            connections=connections,
        )
    finally:
        server.drop_list_index(user)
    result.user = user
    result.create_s = create_s
    if warm:
        t1 = time.perf_counter()
        conn = _Pipeline(server.host, server.port, user, server.password(user), 120.0)
        try:
            conn.run([b'S0 LIST "" "*" RETURN (STATUS (MESSAGES HIGHESTMODSEQ))\r\n'])
        finally:
            conn.close()
        result.warm_s = time.perf_counter() - t1
    return result
