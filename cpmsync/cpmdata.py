"""CPM-like account data: conversation folder names, chat messages and their flags.

The one generator behind `msgstore seed`, the demo, the IMAP seeding of test servers
(`tests.support.seed`) and the simulator's accounts, so "the same account shape" means the
same names and message sizes everywhere. Names follow the CR's examples (`Default`,
`tel:+1514...`, UUID group chats, sub-conversations nested as `<uuid>/<uuid>` under an existing
group); messages are RFC 5322 chat messages with the headers a CPM store keeps
(Conversation-ID, Contribution-ID, Message-Context), a few hundred bytes to a few KB.
Pure functions of a `random.Random`: the same seed gives the same data. No I/O, no database
imports, so the simulator can use it without the message store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

__all__ = [
    "OWNER",
    "chat_message",
    "conversation_name",
    "folder_message",
    "folder_names",
    "is_group",
    "message_flags",
    "message_time",
    "random_tel",
    "random_uuid",
]

OWNER = "tel:+15143450000"
"""The account owner's address in generated messages."""

NESTED_SHARE = 0.15
"""Share of new names that are a sub-conversation of an existing group chat."""
TEL_SHARE = 0.40
"""Share of new names that are one-to-one chats named by the peer's tel URI."""
# the rest (45 %) are group chats named by a conversation UUID

INCOMING_SHARE = 0.6
SEEN_SHARE = 0.6
FLAGGED_SHARE = 0.1
LONG_SHARE = 0.1
"""Share of messages that are long (up to LONG_MAX_WORDS words instead of SHORT_MAX_WORDS)."""
SHORT_MAX_WORDS = 80
LONG_MAX_WORDS = 600
MIN_WORDS = 8
BODY_LINE_CHARS = 76
"""Body lines are wrapped so every line stays far below RFC 5322's 998-character limit."""
MAX_AGE_S = 90 * 86400

_WORDS = (
    "ok see you later on my way running late call me when you can sounds good lunch tomorrow "
    "meeting moved to three did you get the photo thanks happy birthday where are you now "
    "the train is delayed again I will bring the documents let me check and come back to you"
).split()


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng` (not from the OS), so it is reproducible."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_tel(rng: random.Random) -> str:
    """A peer's tel URI, +1 514 and 7 digits: wide enough that 50,000 folders rarely repeat one."""
    return f"tel:+1514{rng.randrange(10**7):07d}"


def is_group(name: str) -> bool:
    """A top-level group chat folder (a UUID name), the only kind that gets sub-conversations."""
    return "/" not in name and not name.startswith("tel:") and name != "Default"


def conversation_name(rng: random.Random, groups: Sequence[str]) -> str:
    """One new conversation folder name; a nested one only under an existing group in `groups`."""
    roll = rng.random()
    if roll < NESTED_SHARE and groups:
        return f"{rng.choice(groups)}/{random_uuid(rng)}"
    if roll < NESTED_SHARE + TEL_SHARE:
        return random_tel(rng)
    return random_uuid(rng)


def folder_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct folder names, `Default` first, parents always before their children."""
    names: list[str] = ["Default"][:count]
    seen = set(names)
    groups: list[str] = []
    while len(names) < count:
        name = conversation_name(rng, groups)
        if name in seen:
            continue
        seen.add(name)
        names.append(name)
        if is_group(name):
            groups.append(name)
    return names


def message_time(rng: random.Random, now: datetime) -> datetime:
    """When a seeded message arrived: up to 90 days before `now`, whole seconds."""
    return now.replace(microsecond=0) - timedelta(seconds=rng.randrange(MAX_AGE_S))


def message_flags(rng: random.Random) -> tuple[str, ...]:
    """The flags of a seeded message: most are read, a few flagged."""
    flags: tuple[str, ...] = ("\\Seen",) if rng.random() < SEEN_SHARE else ()
    if rng.random() < FLAGGED_SHARE:
        flags += ("\\Flagged",)
    return flags


def chat_message(rng: random.Random, sender: str, recipient: str, when: datetime, conversation: str) -> bytes:
    """One chat message as a CPM store keeps it (RFC 5322 + CPM headers), CRLF line ends.

    `conversation` names the conversation (its folder): its Conversation-ID is derived from it,
    so every message of a conversation carries the same one.
    """
    words = rng.randint(MIN_WORDS, LONG_MAX_WORDS if rng.random() < LONG_SHARE else SHORT_MAX_WORDS)
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > BODY_LINE_CHARS:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    body = ("\r\n".join(lines) + "\r\n").encode()
    headers = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        f"Date: {format_datetime(when.astimezone(UTC))}",
        f"Subject: {' '.join(text.split()[:4])}",
        f"Message-ID: <{random_uuid(rng)}@cpm.example>",
        f"Conversation-ID: {uuid.uuid5(uuid.NAMESPACE_URL, conversation)}",
        f"Contribution-ID: {random_uuid(rng)}",
        "Message-Context: pager-message",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def folder_message(
    rng: random.Random, folder: str, when: datetime, owner: str = OWNER, *, incoming: bool | None = None
) -> bytes:
    """A message in `folder`: with the tel: peer it is named after, or a group member.

    `incoming` None draws the direction (60 % from the peer, the rest sent by `owner`).
    """
    last = folder.rsplit("/", 1)[-1]
    peer = last if last.startswith("tel:") else random_tel(rng)
    if incoming is None:
        incoming = rng.random() < INCOMING_SHARE
    sender, recipient = (peer, owner) if incoming else (owner, peer)
    return chat_message(rng, sender, recipient, when, folder)
