"""Helpers for the sync-engine tests: settings, the server's state read by a second client
(imapclient, not ours), the cache's state, and the state rebuilt from the MQTT events alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache, MessageData, open_cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import ImapSession
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.models.schema import CacheSchemaError

State = dict[str, dict[int, frozenset[str]]]
WAIT_S = 60.0


def daemon_settings(
    host: str, port: int, user: str, password: str, mqtt_port: int, tmp: Path, **imap: Any
) -> DaemonSettings:
    base: dict[str, Any] = {
        "host": host,
        "port": port,
        "tls": "none",
        "username": user,
        "password": password,
        "debounce_ms": 20,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "command_timeout_s": 10,
    }
    base.update(imap)
    return DaemonSettings.model_validate(
        {
            "account": {"id": user},
            "imap": base,
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},
            "cache": {"path": str(tmp / f"cache-{user}.sqlite")},
        }
    )


def other_client(host: str, port: int, user: str, password: str) -> IMAPClient:
    """A second, independent IMAP client (imapclient, not ours), logged in: "another device"."""
    c = IMAPClient(host, port, ssl=False, use_uid=True)
    c.login(user, password)
    return c


def _clean(flags: Any) -> frozenset[str]:
    out = set()
    for f in flags:
        s = f.decode() if isinstance(f, bytes) else str(f)
        if s.upper() != "\\RECENT":
            out.add(s)
    return frozenset(out)


def server_state(host: str, port: int, user: str, password: str) -> State:
    """Every selectable folder, its UIDs and flags, as another client sees them."""
    c = other_client(host, port, user, password)
    try:
        state: State = {}
        for flags, _delim, name in c.list_folders():
            if any(f.upper() in (b"\\NOSELECT", b"\\NONEXISTENT") for f in flags):
                continue
            info = c.select_folder(name, readonly=True)
            msgs: dict[int, frozenset[str]] = {}
            if info.get(b"EXISTS", 0):
                for uid, data in c.fetch(c.search("ALL"), ["FLAGS"]).items():
                    msgs[uid] = _clean(data[b"FLAGS"])
            state[name] = msgs
            c.unselect_folder()
        return state
    finally:
        with contextlib.suppress(Exception):
            c.logout()


class Account(Protocol):
    """An IMAP account a test syncs: a LocalAccount, the shared Dovecot's or a peer's."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...


def state_of(acct: Account) -> Callable[[], State]:
    """What `wait_equal` compares the cache with: the account as another client sees it now."""
    return lambda: server_state(acct.host, acct.port, acct.user, acct.password)


def append_uid(acct: Account, folder: str, subject: str) -> int:
    """Another device appends a message from a tel: sender to `folder`; its UID (APPENDUID)."""
    c = other_client(acct.host, acct.port, acct.user, acct.password)
    try:
        res = c.append(folder, f"From: <tel:+15145550100>\r\nSubject: {subject}\r\n\r\nhi\r\n".encode())
        return int(res.split(b"APPENDUID")[1].split()[1].rstrip(b"]"))
    finally:
        c.logout()


@dataclass(frozen=True)
class LocalAccount:
    """An account on a server at 127.0.0.1:`port` (alice on a test msgstore unless told):
    what the daemon syncs, and what another device sees and changes."""

    port: int
    user: str = "alice"
    password: str = "alice-pw"
    host: str = "127.0.0.1"

    def client(self) -> IMAPClient:
        return other_client(self.host, self.port, self.user, self.password)

    def state(self) -> State:
        return server_state(self.host, self.port, self.user, self.password)

    def settings(self, mqtt_port: int, tmp: Path, **imap: Any) -> DaemonSettings:
        return daemon_settings(self.host, self.port, self.user, self.password, mqtt_port, tmp, **imap)

    async def seed(self, folders: int, messages: int, seed: int = 0) -> None:
        """`seed_small` from a thread (imapclient blocks)."""
        await asyncio.to_thread(
            seed_small, self.host, self.port, self.user, self.password, folders, messages, seed
        )


def cache_state(cache: Cache) -> State:
    return {name: {m.uid: frozenset(m.flags) for m in cache.messages(name)} for name in cache.folders()}


def replay_events(events: list[dict[str, Any]]) -> State:
    """The mailbox state an app would hold having seen only these events (duplicates dropped by id)."""
    state: State = {}
    seen: set[str] = set()
    for ev in events:
        if ev["id"] in seen:
            continue
        seen.add(ev["id"])
        kind, folder = ev["kind"], ev["folder"]
        if kind == "folder_added":
            state.setdefault(folder, {})
        elif kind == "folder_removed":
            state.pop(folder, None)
        elif kind == "folder_renamed":
            state[folder] = state.pop(ev["old_folder"], {})
        elif kind == "message_added":
            for uid in ev["uids"]:
                state.setdefault(folder, {})[uid] = frozenset(ev.get("flags") or ())
        elif kind == "flags_changed":
            for uid in ev["uids"]:
                state.setdefault(folder, {})[uid] = frozenset(ev.get("flags") or ())
        elif kind == "message_removed":
            for uid in ev["uids"]:
                state.get(folder, {}).pop(uid, None)
    return state


async def wait_until(pred: Callable[[], bool], timeout_s: float = WAIT_S, interval_s: float = 0.05) -> None:
    """Poll a condition on the cache (SQLite has no change callback to await)."""
    async with asyncio.timeout(timeout_s):
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(interval_s)


async def wait_equal(cache: Cache, server: Callable[[], State], timeout_s: float = WAIT_S) -> State:
    """Wait until the cache equals the server; returns the server state (fails with a diff)."""
    last: State = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                last = await asyncio.to_thread(server)
                if cache_state(cache) == last:
                    return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        mine = cache_state(cache)
        diff = {k: (mine.get(k), last.get(k)) for k in set(mine) | set(last) if mine.get(k) != last.get(k)}
        raise AssertionError(f"cache != server: {diff}") from None


async def open_cache_as_reader(path: Path, account: str, timeout_s: float = WAIT_S) -> Cache:
    """Open the cache a daemon PROCESS is creating, as `cpmsync daemon stats` does: never create
    or migrate it (upgrade=False), retry until the daemon has written its schema. (A second writer
    creating the tables at the same moment failed with "table schema_version already exists"
    when all earlier daemons had been killed before their cache existed.)"""
    async with asyncio.timeout(timeout_s):
        while True:
            if await asyncio.to_thread(path.exists):
                try:
                    return Cache.open(path, account, upgrade=False)
                except CacheSchemaError:
                    pass
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_daemon(settings: DaemonSettings, **kw: Any) -> AsyncIterator[tuple[ImapSession, Cache]]:
    """The daemon's session loop + publisher in this event loop (the CLI runs the same pieces)."""
    cache = open_cache(settings)
    publisher = Publisher(settings.mqtt, settings.account.id, cache)
    session = ImapSession(settings, cache, publisher, **kw)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(publisher.run())
            task = tg.create_task(session.run())
            async with asyncio.timeout(WAIT_S):
                await session.ready.wait()
            try:
                yield session, cache
            finally:
                session.stop.set()
                await task
                await publisher.close()
    finally:
        cache.close()


def seed_small(
    host: str, port: int, user: str, password: str, folders: int, messages: int, seed: int = 0
) -> None:
    """A few CPM-like folders with messages, by plain IMAP (small accounts; benches use seed_dovecot)."""
    rng = random.Random(seed)
    c = other_client(host, port, user, password)
    try:
        names = ["Default"] + [f"tel:+1514{rng.randint(1000000, 9999999)}" for _ in range(folders - 1)]
        for name in names:
            c.create_folder(name)
            for i in range(messages):
                body = f"From: p{i}@example.org\r\nSubject: m{i}\r\n\r\nhello {i}\r\n"
                c.append(name, body.encode(), flags=rng.choice([(), ("\\Seen",)]))
    finally:
        c.logout()


def random_changes(c: IMAPClient, rng: random.Random, n: int, *, folder_ops: bool = True) -> None:
    """Apply n random changes by another client: append, flag, unflag, expunge, create, delete, rename."""
    for _ in range(n):
        folders = [
            name
            for flags, _d, name in c.list_folders()
            if not any(f.upper() in (b"\\NOSELECT", b"\\NONEXISTENT") for f in flags)
        ]
        op = rng.choice(
            ["append", "append", "flag", "flag", "unflag", "expunge"]
            + (["create", "delete", "rename"] if folder_ops else [])
        )
        folder = rng.choice(folders)
        if op == "append":
            body = f"From: a{rng.randint(0, 9)}@example.org\r\nSubject: s{rng.random()}\r\n\r\nhi\r\n"
            c.append(folder, body.encode(), flags=rng.choice([(), ("\\Seen",)]))
        elif op in ("flag", "unflag", "expunge"):
            c.select_folder(folder)
            uids = c.search("ALL")
            if uids:
                uid = rng.choice(uids)
                if op == "flag":
                    c.add_flags([uid], [rng.choice([b"\\Seen", b"\\Flagged", b"$Label1"])])
                elif op == "unflag":
                    c.remove_flags([uid], [b"\\Seen", b"\\Flagged"])
                else:
                    c.add_flags([uid], [b"\\Deleted"])
                    c.uid_expunge([uid])
            c.unselect_folder()
        elif op == "create":
            c.create_folder(f"box{rng.randint(0, 10**6)}")
        elif op == "delete":
            victims = [f for f in folders if f.startswith("box")]
            if victims:
                c.delete_folder(rng.choice(victims))
        elif op == "rename":
            victims = [f for f in folders if f.startswith("box")]
            if victims:
                c.rename_folder(rng.choice(victims), f"box{rng.randint(0, 10**6)}")


async def wait_replay(col: Any, final: State) -> None:
    """Wait until the events received rebuild `final`; fails with the difference."""
    try:
        await col.wait_until(lambda _ms: replay_events(col.events()) == final)
    except TimeoutError:
        got = replay_events(col.events())
        diff = {k: (got.get(k), final.get(k)) for k in set(got) | set(final) if got.get(k) != final.get(k)}
        raise AssertionError(f"events do not rebuild the server state: {diff}") from None


def daemon_process(config: Path, password: str) -> subprocess.Popen[bytes]:
    """`cpmsync daemon run --config ...` as its own process (to be SIGKILLed), password from the env."""
    env = dict(os.environ, CPMSYNC_IMAP__PASSWORD=password)
    return subprocess.Popen(
        [sys.executable, "-m", "cpmsync.cli", "daemon", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def cache_with_one_message(path: Path) -> None:
    """A cache for account "acct" that synced INBOX with one message (uid 1, subject "kept")."""
    c = Cache.open(path, "acct")
    c.begin_discovery(10, ["INBOX"])
    with c.folder_sync("INBOX") as fs:
        fs.set_status(uidvalidity=1, highestmodseq=10)
        fs.add_message(MessageData(uid=1, modseq=10, subject="kept"))
    c.close()
