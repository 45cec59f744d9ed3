"""Fixtures most msgstore tests share: a server on a free port, and a store with one user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import MessageStore
from tests.msgstore.server_testlib import Running, running_server


@pytest.fixture
async def srv() -> AsyncIterator[Running]:
    """The msgstore IMAP server with default settings, users alice and bob."""
    async with running_server() as r:
        yield r


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MessageStore]:
    """A fresh SQLite store with the user alice (password alice-pw)."""
    s = MessageStore(f"sqlite:///{tmp_path / 'store.sqlite'}", sqlite_synchronous="NORMAL")
    s.add_user("alice", "alice-pw")
    yield s
    s.close()
