"""The pg_notify payload that carries committed `StoreEvent`s from one msgstore instance to the others.

`user instance token [[kind, mailbox_id, modseq, name, old_name, uids], ...]`: the user first, so a
listener drops the changes of users it has no session for without parsing JSON; the instance and
token, so an instance recognises its own commits (it already holds those events, with the session
that made them); then the events, UIDs as ranges. PostgreSQL refuses payloads of 8000 bytes or
more, so a transaction's events go out in as many notifications as they need (same transaction:
delivered together, in order). An event whose names alone do not fit (a RENAME between two
1,000-character names) travels without them and the listener reads them from the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cpmsync.msgstore.hub import EventKind, StoreEvent

__all__ = [
    "PAYLOAD_LIMIT_BYTES",
    "Notification",
    "decode_notification",
    "encode_notifications",
    "split_head",
]

# NOTIFY_PAYLOAD_MAX_LENGTH is 8000 (BLCKSZ - NAMEDATALEN - 128); keep clear of it.
PAYLOAD_LIMIT_BYTES = 7800


def _dumps(item: list[Any]) -> str:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def _ranges(uids: Sequence[int]) -> list[Any]:
    """[3, [5, 9], 12]: single UIDs as numbers, runs as [first, last] (input in any order)."""
    out: list[Any] = []
    lo = hi = None
    for u in sorted(set(uids)):
        if hi is not None and u == hi + 1:
            hi = u
            continue
        if lo is not None:
            out.append(lo if lo == hi else [lo, hi])
        lo = hi = u
    if lo is not None:
        out.append(lo if lo == hi else [lo, hi])
    return out


def _items(ev: StoreEvent, budget: int) -> Iterator[str]:
    """The event as JSON items of at most `budget` bytes each (UID lists split as needed)."""
    ranges = _ranges(ev.uids)
    head: list[Any] = [ev.kind.value, ev.mailbox_id, ev.modseq, ev.mailbox, ev.old_name]
    whole = _dumps([*head, ranges])
    if len(whole.encode()) <= budget:
        yield whole
        return
    if len(_dumps([*head, []]).encode()) > budget // 2:
        head = [ev.kind.value, ev.mailbox_id, ev.modseq, None, None]  # names from the store
    room = budget - len(_dumps([*head, []]).encode())
    chunk: list[Any] = []
    size = 0
    for r in ranges:
        n = len(_dumps([r])) - 1  # the range and a comma
        if chunk and size + n > room:
            yield _dumps([*head, chunk])
            chunk, size = [], 0
        chunk.append(r)
        size += n
    yield _dumps([*head, chunk])


def encode_notifications(user: str, instance: str, token: int, events: Sequence[StoreEvent]) -> list[str]:
    """Payloads for one transaction's events, each under PAYLOAD_LIMIT_BYTES."""
    prefix = f"{user} {instance} {token} "
    budget = PAYLOAD_LIMIT_BYTES - len(prefix.encode()) - 2  # the enclosing brackets
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for ev in events:
        for item in _items(ev, budget):
            n = len(item.encode()) + 1
            if batch and size + n > budget:
                out.append(prefix + "[" + ",".join(batch) + "]")
                batch, size = [], 0
            batch.append(item)
            size += n
    if batch:
        out.append(prefix + "[" + ",".join(batch) + "]")
    return out


@dataclass(frozen=True, slots=True)
class Notification:
    """A decoded payload. Events with `mailbox == ""` and `needs_names` must be completed from the store."""

    user: str
    instance: str
    token: int
    events: tuple[StoreEvent, ...]
    needs_names: bool


def split_head(payload: str) -> tuple[str, str, int, str]:
    """(user, instance, token, rest) without parsing the JSON (user names have no spaces)."""
    user, instance, token, rest = payload.split(" ", 3)
    return user, instance, int(token), rest


def decode_notification(payload: str) -> Notification:
    """ValueError on anything this module did not write."""
    user, instance, token, body = split_head(payload)
    events: list[StoreEvent] = []
    needs_names = False
    for kind, mailbox_id, modseq, name, old_name, ranges in json.loads(body):
        uids: list[int] = []
        for r in ranges:
            if isinstance(r, list):
                uids.extend(range(int(r[0]), int(r[1]) + 1))
            else:
                uids.append(int(r))
        if name is None:
            needs_names = True
        events.append(
            StoreEvent(
                user,
                name if name is not None else "",
                int(mailbox_id),
                EventKind(kind),
                tuple(uids),
                int(modseq),
                old_name,
            )
        )
    return Notification(user, instance, token, tuple(events), needs_names)
