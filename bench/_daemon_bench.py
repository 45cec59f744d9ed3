"""Shared pieces of the daemon benchmarks: a seeded msgstore served from its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpmsync.daemon.settings import DaemonSettings
from cpmsync.msgstore import MessageStore, MsgstoreSettings
from cpmsync.msgstore.server import ImapServer
from cpmsync.msgstore.store import BulkMailbox, BulkMessage


def cpm_names(n: int) -> list[str]:
    """CPM-like conversation folder names: Default, tel: URIs, UUID group chats."""
    out = ["Default"]
    i = 0
    while len(out) < n:
        out.append(f"tel:+1514{5550000 + i:07d}" if i % 2 else str(uuid.UUID(int=i + 1)))
        i += 1
    return out[:n]


def seed_msgstore(
    path: Path, user: str, password: str, folders: int, messages: int
) -> tuple[MessageStore, list[str]]:
    store = MessageStore(f"sqlite:///{path}")
    store.add_user(user, password)
    names = cpm_names(folders)
    boxes = [
        BulkMailbox(
            name,
            [
                BulkMessage(
                    f"From: Peer {j} <p{j}@example.org>\r\nTo: me@example.org\r\nSubject: msg {j}\r\n"
                    f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nHello number {j} in {name}\r\n".encode(),
                    ("\\Seen",) if j % 2 else (),
                )
                for j in range(messages)
            ],
        )
        for name in names
        if name.upper() != "INBOX"
    ]
    for i in range(0, len(boxes), 2000):
        store.bulk_load(user, boxes[i : i + 2000])
    return store, names


@contextlib.contextmanager
def msgstore_thread(store: MessageStore, extensions: dict[str, Any]) -> Iterator[int]:
    """Serve `store` with these [extensions] on a free port from a thread; yields the port."""
    settings = MsgstoreSettings(
        server={"listen": ["127.0.0.1:0"]},
        limits={"auth_failure_delay_ms": 0, "max_commands_per_s": 0},
        extensions=extensions,
    )
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            server = ImapServer(settings, store)
            holder["server"] = server
            await server.serve()

        try:
            asyncio.run(main())
        except BaseException as e:  # surfaced to the caller below
            holder["error"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while "server" not in holder or not holder["server"].ready.is_set():
        if "error" in holder:
            raise holder["error"]
        if time.monotonic() > deadline:
            raise TimeoutError("msgstore did not start")
        time.sleep(0.01)
    try:
        yield holder["server"].port
    finally:
        holder["loop"].call_soon_threadsafe(holder["server"].stop)
        th.join(timeout=30)


def daemon_settings(
    port: int, user: str, password: str, cache: Path, *, imap: dict[str, Any] | None = None, **sections: Any
) -> DaemonSettings:
    """Daemon settings for a benchmark against a local msgstore on `port` (plain TCP, long timeouts)."""
    return DaemonSettings.model_validate(
        {
            "account": {"id": user},
            "imap": {
                "host": "127.0.0.1",
                "port": port,
                "tls": "none",
                "username": user,
                "password": password,
                "command_timeout_s": 600,
                **(imap or {}),
            },
            "cache": {"path": str(cache)},
            **sections,
        }
    )
