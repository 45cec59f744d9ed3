"""What apps publish to act on the account, and what the daemon answers (docs/asyncapi.yaml).

An app publishes one JSON object per action on `{prefix}/{account}/actions` (QoS 1). The `id` is
the app's idempotency key: the daemon records it with the action, answers a repeat with the
recorded result and never applies it twice. Results go to `{prefix}/{account}/actions/results`
and, when the request carried an MQTT 5 response topic, there as well (with its correlation data).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from cpmsync.models.events import EVENT_SCHEMA_VERSION

__all__ = [
    "ACTION_KINDS",
    "ID_MAX_CHARS",
    "REASONS",
    "Action",
    "ActionResult",
    "ActionState",
    "AppendAction",
    "CreateFolderAction",
    "DeleteFolderAction",
    "DeleteMessagesAction",
    "MarkReadAction",
    "MarkUnreadAction",
    "MoveMessagesAction",
    "Reason",
    "RenameFolderAction",
    "SetFlagsAction",
    "action_adapter",
    "bad_folder_name",
]

ID_MAX_CHARS = 64
FOLDER_MAX_BYTES = 1000  # Dovecot's default mailbox name limit is 255 per level; RFC 3501 sets none

ActionState = Literal["accepted", "applied", "failed"]

# Stable reason codes: apps switch on these, so a code is never renamed or reused.
Reason = Literal[
    "invalid_json",  # the payload is not a JSON object
    "unknown_action",  # `action` names no action this daemon knows
    "missing_field",  # a required field is absent
    "invalid_field",  # a field has the wrong type or value (ids over 64 characters, uid 0...)
    "too_large",  # `message` decodes to more than [actions] max_message_bytes
    "bad_folder_name",  # control characters, lone surrogates, or too long
    "folder_not_found",  # the folder does not exist (deleted meanwhile, never renamed)
    "folder_exists",  # create/rename onto a name that exists
    "messages_gone",  # every message of the action was expunged meanwhile
    "uidvalidity_changed",  # the folder was recreated: the action's UIDs mean nothing now
    "unsupported",  # the server lacks what the action needs (UID EXPUNGE without UIDPLUS...)
    "refused",  # the server said NO or BAD for a reason of its own; `text` has its words
    "parked",  # refused or cut [actions] max_tries times; never retried, never blocks others
]
REASONS: tuple[str, ...] = Reason.__args__  # type: ignore[attr-defined]


def bad_folder_name(name: str) -> str | None:
    """Why a mailbox name cannot go to the server, or None. IMAP names travel as mUTF-7 or
    quoted strings: a control character (CR LF would end the command line) or a lone surrogate
    (no UTF-8 for it) cannot be sent faithfully."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "control character in folder name"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "lone surrogate in folder name"
    if len(name.encode()) > FOLDER_MAX_BYTES:
        return f"folder name over {FOLDER_MAX_BYTES} bytes"
    return None


def _check_name(v: str) -> str:
    why = bad_folder_name(v)
    if why is not None:
        raise ValueError(f"bad_folder_name: {why}")
    return v


# A mailbox name that can go to the server (see bad_folder_name), checked wherever one is given.
_FolderName = Annotated[str, AfterValidator(_check_name)]


def _check_flags(v: list[str]) -> list[str]:
    """A flag is an atom (RFC 3501 flag-keyword) or one of the \\ system flags."""
    for f in v:
        body = f[1:] if f.startswith("\\") else f
        if not body or any(c in '(){ %*"\\]' or ord(c) <= 0x20 or ord(c) >= 0x7F for c in body):
            raise ValueError(f"not an IMAP flag: {f!r}")
    return v


# defer_build (here, on ActionResult and on action_adapter): the validators are built when the first
# action arrives, not at every daemon start; most daemons never receive one (~4 ms of start-up).
class _Action(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str = Field(min_length=1, max_length=ID_MAX_CHARS, description="Idempotency key chosen by the app")


class _FolderAction(_Action):
    folder: _FolderName = Field(description="Mailbox name (not encoded)")


_Uids = list[Annotated[int, Field(ge=1, le=2**32 - 1)]]


class MarkReadAction(_FolderAction):
    """Add \\Seen; without `uids`, to every message the daemon knows in the folder at accept."""

    action: Literal["mark_read"]
    uids: _Uids | None = None


class MarkUnreadAction(_FolderAction):
    """Remove \\Seen; without `uids`, from every message the daemon knows in the folder at accept."""

    action: Literal["mark_unread"]
    uids: _Uids | None = None


class SetFlagsAction(_FolderAction):
    """Add and remove flags (system flags and keywords); flags named in neither list are kept."""

    action: Literal["set_flags"]
    uids: _Uids = Field(min_length=1)
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)

    @field_validator("add", "remove")
    @classmethod
    def _flags(cls, v: list[str]) -> list[str]:
        return _check_flags(v)


class DeleteMessagesAction(_FolderAction):
    """Expunge exactly these messages (UID EXPUNGE); nothing else is expunged."""

    action: Literal["delete_messages"]
    uids: _Uids = Field(min_length=1)


class MoveMessagesAction(_FolderAction):
    """Move messages to `to` (MOVE, else COPY + STORE \\Deleted + UID EXPUNGE)."""

    action: Literal["move_messages"]
    uids: _Uids = Field(min_length=1)
    to: _FolderName


class CreateFolderAction(_FolderAction):
    action: Literal["create_folder"]


class RenameFolderAction(_FolderAction):
    action: Literal["rename_folder"]
    to: _FolderName


class DeleteFolderAction(_FolderAction):
    action: Literal["delete_folder"]


class AppendAction(_FolderAction):
    """Store a message: `message` is the RFC 5322 bytes in base64."""

    action: Literal["append"]
    message: str = Field(description="RFC 5322 message, base64")
    flags: list[str] = Field(default_factory=list)

    @field_validator("message")
    @classmethod
    def _b64(cls, v: str) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError("message is not base64") from e
        if not raw:
            raise ValueError("message is empty")
        return v

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: list[str]) -> list[str]:
        return _check_flags(v)

    def raw(self) -> bytes:
        return base64.b64decode(self.message)


Action = Annotated[
    MarkReadAction
    | MarkUnreadAction
    | SetFlagsAction
    | DeleteMessagesAction
    | MoveMessagesAction
    | CreateFolderAction
    | RenameFolderAction
    | DeleteFolderAction
    | AppendAction,
    Field(discriminator="action"),
]
ACTION_KINDS = (
    "mark_read",
    "mark_unread",
    "set_flags",
    "delete_messages",
    "move_messages",
    "create_folder",
    "rename_folder",
    "delete_folder",
    "append",
)

action_adapter: TypeAdapter[Action] = TypeAdapter(Action, config=ConfigDict(defer_build=True))


class ActionResult(BaseModel):
    """One step of an action's life, on `{prefix}/{account}/actions/results` (QoS 1, not retained)."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, json_schema_serialization_defaults_required=True, defer_build=True
    )

    schema_version: int = EVENT_SCHEMA_VERSION
    id: str | None = Field(None, description="The action's id; null when the payload was not JSON")
    action: str | None = None
    state: ActionState
    reason: Reason | None = Field(None, description="failed only: a stable code")
    text: str | None = Field(None, description="Details: the server's words, the invalid field")
    folder: str | None = Field(None, description="The folder as applied (after following a rename)")
    uids: list[int] = Field(default_factory=list, description="The messages the action covers")
    dropped: list[int] = Field(default_factory=list, description="Expunged meanwhile: left out")
    modified: list[int] = Field(
        default_factory=list, description="Changed by another client meanwhile ([MODIFIED]): re-read"
    )
    new_uids: list[int] = Field(default_factory=list, description="APPENDUID / COPYUID: UIDs in the target")
    uidvalidity: int | None = Field(None, description="UIDVALIDITY of new_uids")
    modseq: int | None = Field(None, description="The highest MODSEQ the server reported for the change")
    tries: int = 0
    created: datetime

    def to_json(self) -> str:
        return self.model_dump_json()
