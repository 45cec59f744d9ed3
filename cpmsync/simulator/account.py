"""A simulated CPM Message Store account: folder names, STATUS values, global MODSEQs, messages.

Names look like the CR's examples (Default, tel: URIs, conversation UUIDs, nested UUIDs) so
the byte counts of LIST and STATUS lines come from realistic lengths, not a per-line constant.
MODSEQs are unique across the account, as LIST-CHANGEDSINCE requires (CR Appendix I.3).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

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
        name = _conversation_name(self.rng)
        while name in self.folders:
            name = _conversation_name(self.rng)
        self.folders[name] = Folder(name, self.rng.randrange(1, 2**31), 1, 0, 0, self.next_modseq())
        return name

    def delete(self, name: str) -> None:
        self.folders.pop(name, None)
        self.next_modseq()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=1))


def _conversation_name(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:  # one-to-one chats are named by the peer's tel URI
        return f"tel:+1{rng.randrange(200, 999)}{rng.randrange(10**6, 10**7)}"
    if r < 0.85:  # group chats by conversation id
        return _uuid(rng)
    return f"{_uuid(rng)}/{_uuid(rng)}"  # nested, as in CR Appendix I example 1


def make_account(n_folders: int, *, seed: int = 0, messages_mean: int = 40) -> Account:
    """An account of `n_folders` conversations with a plausible message history in each."""
    if n_folders < 1:
        raise ValueError("an account has at least one folder")
    rng = random.Random(seed)
    acct = Account(rng=rng)
    acct.modseq = 821_100_000  # same magnitude as the CR's examples
    names = ["Default"]
    seen = set(names)
    while len(names) < n_folders:
        n = _conversation_name(rng)
        if n not in seen:
            seen.add(n)
            names.append(n)
    for name in names:
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


_WORDS = (
    "ok see you soon running late dinner tonight where are you call me back sounds good "
    "thanks on my way meeting moved to tomorrow photo attached love it haha great idea"
).split()


def make_message(rng: random.Random, sender: str, recipient: str, msg_uid: int) -> bytes:
    """A CPM pager-mode message as the Message Store keeps it (RFC 5322 + CPM headers)."""
    words = " ".join(rng.choice(_WORDS) for _ in range(max(1, int(rng.expovariate(1 / 12)))))
    conv = _uuid(rng)
    contrib = _uuid(rng)
    lines = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        f"Date: Fri, 27 Nov 2026 12:{msg_uid % 60:02d}:00 +0000",
        f"Message-ID: <{_uuid(rng)}@msgstore.example.net>",
        f"Conversation-ID: {conv}",
        f"Contribution-ID: {contrib}",
        "Message-Context: pager-message",
        "Content-Type: Message/CPIM",
        "",
        f"From: <{sender}>",
        f"To: <{recipient}>",
        "DateTime: 2026-11-27T12:00:00Z",
        "NS: imdn <urn:ietf:params:imdn>",
        f"imdn.Message-ID: {_uuid(rng)}",
        "imdn.Disposition-Notification: positive-delivery, display",
        "",
        "Content-Type: text/plain; charset=utf-8",
        "",
        words,
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
