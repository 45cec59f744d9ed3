"""The demo's "other device": an IMAP client that appends, marks read and expunges across folders.

It is a second session of the same user on the msgstore, so every change it makes reaches the
daemon the way a real one would: as NOTIFY news on the daemon's own connection. Most changes hit a
small set of "active conversations" (as in real chat use), a few land anywhere in the account.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cpmsync.daemon.imap_client import ImapClient
from cpmsync.imap import (
    AppendCommand,
    ExpungeCommand,
    SearchCommand,
    SearchData,
    SearchKey,
    SelectCommand,
    SequenceSet,
    StoreCommand,
)
from cpmsync.msgstore.seed import make_message

__all__ = ["ChangeCounts", "ChangeGenerator", "ChangeSettings"]

ME = "tel:+15143450000"


@dataclass(frozen=True)
class ChangeSettings:
    """How busy the other device is."""

    changes_per_s: float = 2.0
    active_folders: int = 12  # conversations most changes go to
    active_share: float = 0.8  # share of changes that go to an active conversation
    append_share: float = 0.6  # the rest: mark read (2/3) and expunge (1/3)
    read_share: float = 0.27


@dataclass
class ChangeCounts:
    appended: int = 0
    marked_read: int = 0
    expunged: int = 0
    expunged_newest: int = 0  # of `expunged`: the folder's highest UID (the daemon once looped on it)
    folders: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.appended + self.marked_read + self.expunged


class ChangeGenerator:
    """`await gen.run(imap, seconds)` on a logged-in client; `counts` says what it did."""

    def __init__(
        self,
        folders: Sequence[str],
        settings: ChangeSettings | None = None,
        *,
        seed: int = 1,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings or ChangeSettings()
        self.rng = random.Random(seed)
        self.folders = list(folders)
        k = min(self.settings.active_folders, len(self.folders))
        self.active = self.rng.sample(self.folders, k)
        self.counts = ChangeCounts()
        self.on_change = on_change

    def _pick_folder(self) -> str:
        if self.rng.random() < self.settings.active_share:
            return self.rng.choice(self.active)
        return self.rng.choice(self.folders)

    async def run(self, imap: ImapClient, seconds: float) -> ChangeCounts:
        interval_s = 1.0 / self.settings.changes_per_s
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.one(imap)
            imap.push.drain()  # our own EXISTS/EXPUNGE echoes: not news for this client
            await asyncio.sleep(max(0.0, min(interval_s, deadline - time.monotonic())))
        return self.counts

    async def one(self, imap: ImapClient) -> None:
        """One change: append (most), mark a message read, or expunge one."""
        folder = self._pick_folder()
        roll = self.rng.random()
        s = self.settings
        if roll < s.append_share:
            await self._append(imap, folder)
        elif roll < s.append_share + s.read_share:
            if not await self._flag_one(imap, folder, "UNSEEN", ("\\Seen",)):
                await self._append(imap, folder)
        elif not await self._expunge_one(imap, folder):
            await self._append(imap, folder)

    async def _append(self, imap: ImapClient, folder: str) -> None:
        data = make_message(self.rng, folder, datetime.now(UTC).replace(microsecond=0), ME)
        await imap.execute(AppendCommand("", folder, data))
        self.counts.appended += 1
        self._done("append", folder)

    async def _uids(self, imap: ImapClient, folder: str, key: str) -> list[int]:
        if imap.selected != folder:
            await imap.select(SelectCommand("", folder))
        res = await imap.execute(SearchCommand("", (SearchKey(key),), uid=True))
        return [u for r in res.responses if isinstance(r, SearchData) for u in r.ids]

    async def _flag_one(self, imap: ImapClient, folder: str, key: str, flags: tuple[str, ...]) -> bool:
        uids = await self._uids(imap, folder, key)
        if not uids:
            return False
        uid = self.rng.choice(uids)
        await imap.execute(StoreCommand("", SequenceSet.single(uid), "+", flags, silent=True, uid=True))
        self.counts.marked_read += 1
        self._done("read", folder)
        return True

    async def _expunge_one(self, imap: ImapClient, folder: str) -> bool:
        uids = sorted(await self._uids(imap, folder, "ALL"))
        if len(uids) < 2:  # keep every conversation alive
            return False
        uid = self.rng.choice(uids)
        one = SequenceSet.single(uid)
        await imap.execute(StoreCommand("", one, "+", ("\\Deleted",), silent=True, uid=True))
        await imap.execute(ExpungeCommand("", uids=one))
        self.counts.expunged += 1
        self.counts.expunged_newest += int(uid == uids[-1])
        self._done("expunge", folder)
        return True

    def _done(self, kind: str, folder: str) -> None:
        self.counts.folders.add(folder)
        if self.on_change is not None:
            self.on_change(kind, folder)
