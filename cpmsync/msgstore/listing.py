"""LIST responses (RFC 3501, 5258 LIST-EXTENDED, 5819 LIST-STATUS, CR Appendix I CHANGEDSINCE).

Pure functions from the store's `MailboxListing`s to typed responses; the session makes the
one store call (`list_mailboxes(with_status=True)` or `list_changed_since`) and writes the result,
so LIST-STATUS over 10,000 mailboxes is one grouped query, not 10,000.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cpmsync.imap import ListCommand, ListData, Response, StatusData
from cpmsync.msgstore.records import MailboxListing, MailboxStatus

__all__ = ["STATUS_ITEMS", "list_responses", "status_items"]

DELIMITER = "/"
# STATUS data item -> MailboxStatus field (RFC 3501 6.3.10, 7162 HIGHESTMODSEQ, 8474 MAILBOXID, 8438 SIZE).
_STATUS_FIELDS = {
    "MESSAGES": "messages",
    "RECENT": "recent",
    "UIDNEXT": "uidnext",
    "UIDVALIDITY": "uidvalidity",
    "UNSEEN": "unseen",
    "HIGHESTMODSEQ": "highestmodseq",
    "SIZE": "size",
    "MAILBOXID": "mailboxid",
}
STATUS_ITEMS = frozenset(_STATUS_FIELDS)


def status_items(st: MailboxStatus, items: Sequence[str]) -> dict[str, int | str]:
    """STATUS data items in the order asked (items the server does not know are left out)."""
    out: dict[str, int | str] = {}
    for it in items:
        field = _STATUS_FIELDS.get(it)
        if field is not None:
            out[it] = getattr(st, field)
    return out


def list_responses(
    cmd: ListCommand,
    listings: Sequence[MailboxListing],
    *,
    recursive_extra: Sequence[MailboxListing] = (),
) -> Iterator[Response]:
    """LIST (and per mailbox STATUS) lines for `listings`, in the store's order.

    `recursive_extra`: non-subscribed mailboxes with subscribed children (RECURSIVEMATCH), listed
    with CHILDINFO ("SUBSCRIBED") only (RFC 5258 3.5).
    """
    selection = set(cmd.selection)
    subscribed_sel = "SUBSCRIBED" in selection
    ret = set(cmd.return_opts)
    want_subscribed = subscribed_sel or "SUBSCRIBED" in ret
    want_children = "CHILDREN" in ret
    recursive = "RECURSIVEMATCH" in selection
    items = cmd.return_status
    merged = list(listings)
    if recursive_extra:
        merged = sorted(
            [*listings, *recursive_extra],
            key=lambda m: (0 if m.name == "INBOX" or m.name.startswith("INBOX/") else 1, m.name),
        )
    extra_ids = {id(m) for m in recursive_extra}
    for m in merged:
        attrs: list[str] = []
        if m.nonexistent:
            attrs.append("\\NonExistent")
        if want_children and not m.nonexistent:
            attrs.append("\\HasChildren" if m.has_children else "\\HasNoChildren")
        if want_subscribed and m.subscribed and id(m) not in extra_ids:
            attrs.append("\\Subscribed")
        childinfo = None
        if recursive and m.has_subscribed_children:
            childinfo = ("SUBSCRIBED",)
        yield ListData(
            attributes=tuple(attrs),
            delimiter=DELIMITER,
            name=m.name,
            childinfo=childinfo,
            oldname=m.old_name,
        )
        if items is not None and m.status is not None and not m.nonexistent:
            yield StatusData(m.name, status_items(m.status, items))
