"""JSON payloads the daemon publishes over MQTT (documented in docs/asyncapi.yaml).

A change event's `id` is derived only from what the change is (account, folder, uidvalidity,
uids, modseq, kind), so an event published twice after a crash or a broker cut carries the
same id and a consumer can drop the duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "EventKind",
    "FolderEvent",
    "FolderSummary",
    "LastMessage",
    "StatusPayload",
    "StatusState",
    "event_id",
]

EVENT_SCHEMA_VERSION = 1

EventKind = Literal[
    "message_added",
    "flags_changed",
    "message_removed",
    "folder_added",
    "folder_removed",
    "folder_renamed",
]
# connecting: the daemon runs (broker link up) but has not reached the message store yet;
# disconnected: it lost the message store (or cannot reach it) and retries; last_error says why.
StatusState = Literal["connecting", "syncing", "online", "disconnected", "offline"]


def _json_int(n: int | None) -> str:
    return "null" if n is None else int.__repr__(n)


def event_id(
    account: str,
    folder: str,
    uidvalidity: int | None,
    uids: Iterable[int],
    modseq: int | None,
    kind: str,
    detail: str | None = None,
    generation: int = 0,
) -> str:
    """Deterministic id: the same change detected twice yields the same id (32 hex digits).

    `detail` tells apart changes a MODSEQ cannot (a server without CONDSTORE: two flag changes
    of one message would otherwise share an id and the second be dropped as a duplicate).
    `generation` counts how often the folder name was dropped from the cache: after a folder is
    removed and added back, its messages are news again, under new ids.

    The hashed key is the compact JSON of `[account, folder, uidvalidity, sorted uids, modseq,
    kind(, detail)(, ["generation", n])]`, written here directly (an event per message of a first
    sync; a third of the JSON encoder's time); test_event_ids holds it to json.dumps, byte for byte.
    """
    numbers = ",".join([int.__repr__(u) for u in sorted(uids)])
    key = (
        f"[{_json_str(account)},{_json_str(folder)},{_json_int(uidvalidity)},[{numbers}],"
        f"{_json_int(modseq)},{_json_str(kind)}"
    )
    if detail is not None:
        key += "," + _json_str(detail)
    if generation:
        key += f',["generation",{int.__repr__(generation)}]'
    return hashlib.sha256((key + "]").encode()).hexdigest()[:32]


class _Payload(BaseModel):
    # Every field is always in the JSON (None as null), so the published schema lists all as required.
    model_config = ConfigDict(
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )

    def to_json(self) -> str:
        """Wire form: aliases (`from`), None kept as null, so every documented field is present.

        The model's serializer called directly: `model_dump_json(by_alias=True)` gives the same
        text through a wrapper that cost a fifth of the call, once per event of a first sync."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True).decode()

    @classmethod
    def of(cls, values: dict[str, Any]) -> Self:
        """`cls(**values)`, validated the same, without the keyword packing and `__init__`."""
        return cast(Self, cls.__pydantic_validator__.validate_python(values))


class FolderEvent(_Payload):
    """A change in one folder, published QoS 1 on `{prefix}/{account}/folders/{folder}/events`."""

    schema_version: int = EVENT_SCHEMA_VERSION
    id: str = Field(description="Stable id; duplicates after a retry share it")
    kind: EventKind
    account: str
    folder: str = Field(description="Mailbox name (decoded); for folder_renamed the new name")
    old_folder: str | None = Field(None, description="folder_renamed only: the previous name")
    uidvalidity: int | None = None
    uids: list[int] = Field(default_factory=list)
    modseq: int | None = None
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    subject: str | None = None
    date: datetime | None = None
    preview: str | None = None
    flags: list[str] | None = None
    size: int | None = None
    created: datetime = Field(
        description="When the daemon recorded the change (UTC); events recorded in one cache"
        " transaction share it"
    )


class LastMessage(_Payload):
    """What a folder list needs to render its newest message."""

    uid: int
    from_: str | None = Field(None, alias="from")
    subject: str | None = None
    date: datetime | None = None
    preview: str | None = None


class FolderSummary(_Payload):
    """Retained on `{prefix}/{account}/folders/{folder}`; an empty payload means the folder is gone."""

    schema_version: int = EVENT_SCHEMA_VERSION
    account: str
    name: str
    uidvalidity: int | None = None
    messages: int
    unseen: int
    highestmodseq: int | None = None
    last: LastMessage | None = None
    updated: datetime


class StatusPayload(_Payload):
    """Retained on `{prefix}/{account}/status`; the Last Will publishes state=offline."""

    schema_version: int = EVENT_SCHEMA_VERSION
    account: str
    state: StatusState
    capabilities: list[str] = Field(default_factory=list, description="Extensions in use")
    strategy: str | None = None
    last_sync: datetime | None = None
    last_error: str | None = None
    since: datetime
