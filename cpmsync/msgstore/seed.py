"""CPM-like test data: conversation folders and small chat messages, bulk-loaded in batches.

Folder names follow the CR's examples (`Default`, `tel:+1514...`, UUID group chats, some nested
as `<uuid>/<uuid>`); messages are a few hundred bytes to a few KB with the headers a CPM store
keeps (Conversation-ID, Contribution-ID). Deterministic for a given seed, so runs compare.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from cpmsync.msgstore.store import BulkMailbox, BulkMessage, MessageStore

__all__ = ["SeedResult", "folder_names", "make_message", "seed_account"]

_WORDS = (
    "ok see you later on my way running late call me when you can sounds good lunch tomorrow "
    "meeting moved to three did you get the photo thanks happy birthday where are you now "
    "the train is delayed again I will bring the documents let me check and come back to you"
).split()


@dataclass(frozen=True, slots=True)
class SeedResult:
    folders: list[str]
    messages: int


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _tel(rng: random.Random) -> str:
    return f"tel:+1514345{rng.randrange(10_000):04d}"


def folder_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct folder names, parents always before their children."""
    names: list[str] = ["Default"][:count]
    seen = set(names)
    groups: list[str] = []
    while len(names) < count:
        roll = rng.random()
        if roll < 0.15 and groups:
            name = f"{rng.choice(groups)}/{_uuid(rng)}"  # sub-conversation of a group chat
        elif roll < 0.55:
            name = _tel(rng)
        else:
            name = _uuid(rng)
            groups.append(name)
        if name in seen:
            continue
        seen.add(name)
        names.append(name)
    return names


def make_message(rng: random.Random, folder: str, when: datetime, me: str) -> bytes:
    """One chat message as a CPM store keeps it (RFC 5322 + CPM conversation headers)."""
    peer = folder.split("/")[-1] if folder.startswith("tel:") else _tel(rng)
    incoming = rng.random() < 0.6
    sender, recipient = (peer, me) if incoming else (me, peer)
    words = rng.randint(8, 600 if rng.random() < 0.1 else 80)
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    conv = str(uuid.uuid5(uuid.NAMESPACE_URL, folder))
    body = text.encode() + b"\r\n"
    headers = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        f"Date: {format_datetime(when)}",
        f"Subject: {' '.join(text.split()[:4])}",
        f"Message-ID: <{_uuid(rng)}@cpm.example>",
        f"Conversation-ID: {conv}",
        f"Contribution-ID: {_uuid(rng)}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _batches(
    names: list[str], per_folder: int, rng: random.Random, batch_folders: int, me: str
) -> Iterator[list[BulkMailbox]]:
    now = datetime.now(UTC).replace(microsecond=0)
    batch: list[BulkMailbox] = []
    for name in names:
        msgs = []
        for _ in range(per_folder):
            when = now - timedelta(seconds=rng.randrange(90 * 86400))
            r = rng.random()
            flags: tuple[str, ...] = ("\\Seen",) if r < 0.6 else ()
            if rng.random() < 0.1:
                flags += ("\\Flagged",)
            msgs.append(BulkMessage(make_message(rng, name, when, me), flags, when))
        batch.append(BulkMailbox(name, msgs))
        if len(batch) >= batch_folders:
            yield batch
            batch = []
    if batch:
        yield batch


def seed_account(
    store: MessageStore,
    user: str,
    folders: int,
    messages_per_folder: int,
    *,
    seed: int = 0,
    batch_folders: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Fill `user` with `folders` conversation folders of `messages_per_folder` messages each.

    One transaction per batch of folders; `progress(folders_done, messages_done)` after each.
    """
    rng = random.Random(seed)
    names = folder_names(folders, rng)
    me = "tel:+15143450000"
    done_f = done_m = 0
    for batch in _batches(names, messages_per_folder, rng, batch_folders, me):
        done_m += store.bulk_load(user, batch)
        if done_f == 0:
            store.analyze()  # the tables just went from empty to a batch: plan for that
        done_f += len(batch)
        if progress is not None:
            progress(done_f, done_m)
    store.analyze()
    return SeedResult(folders=names, messages=done_m)
