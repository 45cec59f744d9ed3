"""A simulated CPM Message Store account: folder names, STATUS values, global MODSEQs, messages.

Names and messages come from `cpmsync.cpmdata`, the generator behind `msgstore seed`, the demo
and the test-server seeding, so the byte counts of LIST and STATUS lines and of FETCHed messages
come from the same account shape the real client and server are measured on.
MODSEQs are unique across the account, as LIST-CHANGEDSINCE requires (CR Appendix I.3).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cpmsync.cpmdata import chat_message, conversation_name, folder_names, is_group

__all__ = ["Account", "Folder", "make_account", "make_message"]


@dataclass(slots=True)
class Folder:
    """One mailbox and the STATUS items a sync strategy asks for."""

    name: str
    uidvalidity: int
    uidnext: int
    messages: int
    unseen: int
    highestmodseq: int

    def status_items(self) -> dict[str, int]:
        return {
            "MESSAGES": self.messages,
            "UIDNEXT": self.uidnext,
            "UIDVALIDITY": self.uidvalidity,
            "UNSEEN": self.unseen,
            "HIGHESTMODSEQ": self.highestmodseq,
        }


@dataclass(slots=True)
class Account:
    """Folders by name plus the account-wide MODSEQ counter."""

    folders: dict[str, Folder] = field(default_factory=dict)
    modseq: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def next_modseq(self) -> int:
        self.modseq += 1
        return self.modseq

    def new_message(self, name: str) -> int:
        """A message arrives in `name`; returns its UID."""
        f = self.folders[name]
        uid = f.uidnext
        f.uidnext += 1
        f.messages += 1
        f.unseen += 1
        f.highestmodseq = self.next_modseq()
        return uid

    def mark_read(self, name: str) -> None:
        """Another device sets \\Seen on the oldest unseen message."""
        f = self.folders[name]
        if f.unseen > 0:
            f.unseen -= 1
        f.highestmodseq = self.next_modseq()

    def create(self) -> str:
        groups = [n for n in self.folders if is_group(n)]
        name = conversation_name(self.rng, groups)
        while name in self.folders:
            name = conversation_name(self.rng, groups)
        self.folders[name] = Folder(name, self.rng.randrange(1, 2**31), 1, 0, 0, self.next_modseq())
        return name

    def delete(self, name: str) -> None:
        self.folders.pop(name, None)
        self.next_modseq()


def make_account(n_folders: int, *, seed: int = 0, messages_mean: int = 40) -> Account:
    """An account of `n_folders` conversations with a plausible message history in each."""
    if n_folders < 1:
        raise ValueError("an account has at least one folder")
    rng = random.Random(seed)
    acct = Account(rng=rng)
    acct.modseq = 821_100_000  # same magnitude as the CR's examples
    for name in folder_names(n_folders, rng):
        msgs = int(rng.expovariate(1 / messages_mean)) if messages_mean else 0
        acct.modseq += rng.randrange(1, 50)
        acct.folders[name] = Folder(
            name=name,
            uidvalidity=rng.randrange(1, 2**31),
            uidnext=msgs + 1 + rng.randrange(0, max(1, msgs // 5 + 1)),
            messages=msgs,
            unseen=min(msgs, int(rng.expovariate(0.5))),
            highestmodseq=acct.modseq,
        )
    return acct


_DAY = datetime(2026, 11, 27, 12, tzinfo=UTC)


def make_message(rng: random.Random, sender: str, recipient: str, msg_uid: int) -> bytes:
    """A CPM chat message from `sender` (`cpmsync.cpmdata.chat_message`), dated by its UID."""
    when = _DAY.replace(minute=msg_uid % 60)
    return chat_message(rng, sender, recipient, when, sender)
