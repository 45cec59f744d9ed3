"""NOTIFY (RFC 5465): which committed changes a session pushes, decided from the client's SET.

The session feeds store events through `NotifySpec.wants`; the spec only answers "does this
client want event E for mailbox M" so the push code stays one place for IDLE and NOTIFY alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cpmsync.imap import NotifyCommand
from cpmsync.msgstore.hub import EventKind

__all__ = ["EVENT_NAMES", "NotifyError", "NotifySpec", "event_name"]

EVENT_NAMES = {
    EventKind.APPEND: "MessageNew",
    EventKind.EXPUNGE: "MessageExpunge",
    EventKind.FLAGS: "FlagChange",
    EventKind.CREATE: "MailboxName",
    EventKind.DELETE: "MailboxName",
    EventKind.RENAME: "MailboxName",
    EventKind.SUBSCRIBE: "SubscriptionChange",
    EventKind.UNSUBSCRIBE: "SubscriptionChange",
}
_SUPPORTED = {"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"}
_MESSAGE_EVENTS = {"MessageNew", "MessageExpunge", "FlagChange"}


def event_name(kind: EventKind) -> str | None:
    return EVENT_NAMES.get(kind)


class NotifyError(Exception):
    """`code` is the response code; `bad` True for a BAD (client bug), False for NO."""

    def __init__(self, message: str, code: str, bad: bool) -> None:
        super().__init__(message)
        self.code = code
        self.bad = bad


@dataclass(frozen=True, slots=True)
class _Group:
    filter: str
    mailboxes: tuple[str, ...]
    events: frozenset[str]
    message_new_atts: tuple[object, ...] | None


class NotifySpec:
    """A validated NOTIFY SET; `None` groups (NOTIFY NONE) means nothing is pushed."""

    def __init__(self, cmd: NotifyCommand) -> None:
        self.status = cmd.status
        self.groups: list[_Group] = []
        for g in cmd.groups or ():
            names = {e.name for e in g.events or ()}
            unknown = names - _SUPPORTED
            if unknown:
                raise NotifyError(f"unsupported event {sorted(unknown)[0]}", "BADEVENT", bad=False)
            # RFC 5465 5 asks clients to name MessageNew, MessageExpunge (and FlagChange) together, but
            # a server may take one alone: Dovecot does, and imaptest's `notify` group expects OK.
            if g.filter.startswith("selected") and names & {"MailboxName", "SubscriptionChange"}:
                raise NotifyError("mailbox events make no sense for the selected mailbox", "CLIENTBUG", True)
            atts = next((e.fetch_atts for e in g.events or () if e.name == "MessageNew"), None)
            self.groups.append(_Group(g.filter, g.mailboxes, frozenset(names), atts))

    @property
    def has_selected(self) -> bool:
        return any(g.filter.startswith("selected") for g in self.groups)

    @property
    def selected_delayed(self) -> bool:
        return any(g.filter == "selected-delayed" for g in self.groups)

    def selected_events(self) -> frozenset[str]:
        for g in self.groups:
            if g.filter.startswith("selected"):
                return g.events
        return frozenset()

    def selected_fetch_atts(self) -> tuple[object, ...] | None:
        for g in self.groups:
            if g.filter.startswith("selected"):
                return g.message_new_atts
        return None

    def _matches(self, g: _Group, mailbox: str, is_subscribed: Callable[[str], bool]) -> bool:
        f = g.filter
        if f == "personal":
            return True
        if f == "inboxes":
            return mailbox == "INBOX"
        if f == "subscribed":
            return is_subscribed(mailbox)
        if f == "mailboxes":
            return mailbox in g.mailboxes
        if f == "subtree":
            return any(mailbox == m or mailbox.startswith(m + "/") for m in g.mailboxes)
        return False

    def wants(self, mailbox: str, event: str, is_subscribed: Callable[[str], bool]) -> bool:
        """For a mailbox that is not the selected one: the first matching group decides (RFC 5465 6)."""
        for g in self.groups:
            if g.filter.startswith("selected"):
                continue
            if self._matches(g, mailbox, is_subscribed):
                return event in g.events
        return False

    def status_mailboxes(
        self, all_names: list[str], is_subscribed: Callable[[str], bool]
    ) -> dict[str, frozenset[str]]:
        """Mailboxes the STATUS indicator reports right after SET (RFC 5465 3), with the message
        events of the group that decides each (they choose the STATUS items, as in Dovecot)."""
        out: dict[str, frozenset[str]] = {}
        for name in all_names:
            for g in self.groups:
                if g.filter.startswith("selected"):
                    continue
                if self._matches(g, name, is_subscribed):
                    if g.events & _MESSAGE_EVENTS:
                        out[name] = g.events & _MESSAGE_EVENTS
                    break
        return out
