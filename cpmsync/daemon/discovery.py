"""Discovery: which folders changed since the last sync, with as few bytes as the server allows.

1. LIST-CHANGEDSINCE (OMA CPM CR, Appendix I): only folders whose MODSEQ is above the watermark.
2. LIST-STATUS (RFC 5819): every folder with its STATUS, compared with the cache.
3. LIST, then STATUS per folder (RFC 3501).
The first sync of an account (watermark 0) lists everything. Without CONDSTORE a flag change
leaves no trace in STATUS, so every folder is compared in full (the only correct option).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cpmsync.daemon.cache import Cache, FolderState
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.imap_client import ImapClient
from cpmsync.imap import ListData, StatusData

__all__ = [
    "Discovery",
    "DiscoveryStrategy",
    "FolderListing",
    "choose_strategy",
    "discover",
    "list_names",
]

STATUS_WINDOW = 128  # default of [imap] status_window: STATUS commands in flight at once

_NOT_SELECTABLE = {"\\NOSELECT", "\\NONEXISTENT"}


@dataclass(frozen=True)
class FolderListing:
    """One LIST entry (and its STATUS when the server gave one)."""

    name: str
    delimiter: str | None
    attributes: tuple[str, ...]
    status: StatusData | None = None

    @property
    def selectable(self) -> bool:
        return not any(a.upper() in _NOT_SELECTABLE for a in self.attributes)


@dataclass
class Discovery:
    """The result: folders to sync, folders gone, renames, and the highest MODSEQ seen."""

    strategy: DiscoveryStrategy
    complete: bool
    changed: dict[str, FolderListing] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    target_modseq: int = 0
    listed: int = 0


def choose_strategy(
    imap: ImapClient, cache: Cache, forced: DiscoveryStrategy | None = None
) -> DiscoveryStrategy:
    """The cheapest discovery the server offers for this account's state."""
    condstore = imap.has("CONDSTORE") or "QRESYNC" in imap.enabled
    if forced is not None and not (forced.incremental and cache.watermark == 0):
        return forced
    if forced is None and imap.has("LIST-CHANGEDSINCE") and condstore and cache.watermark > 0:
        return DiscoveryStrategy.LIST_CHANGEDSINCE
    if imap.has("LIST-STATUS"):
        return DiscoveryStrategy.LIST_STATUS
    return DiscoveryStrategy.LIST_STATUS_PER_FOLDER


def _status_items(imap: ImapClient, *, uidvalidity: bool) -> tuple[str, ...]:
    items = ["MESSAGES", "UIDNEXT", "UNSEEN"]
    if imap.has("CONDSTORE") or "QRESYNC" in imap.enabled:
        items.append("HIGHESTMODSEQ")
    if uidvalidity:
        items.append("UIDVALIDITY")
    return tuple(items)


def _differs(st: StatusData | None, f: FolderState | None, condstore: bool, full: bool) -> bool:
    """Whether the folder needs a sync. Without CONDSTORE a flag change other than \\Seen moves no
    STATUS value: only a `full` pass (every folder's UIDs/FLAGS compared) finds it."""
    if f is None or st is None or (full and not condstore):
        return True
    pairs = (
        (st.uidvalidity, f.uidvalidity),
        (st.uidnext, f.uidnext),
        (st.highestmodseq, f.highestmodseq),
        (st.messages, f.messages),
        (st.unseen, f.unseen),
    )
    return any(new is not None and new != old for new, old in pairs)


def _listings(lists: list[ListData], statuses: dict[str, StatusData]) -> list[FolderListing]:
    return [FolderListing(x.name, x.delimiter, x.attributes, statuses.get(x.name)) for x in lists]


async def list_names(imap: ImapClient) -> list[FolderListing]:
    """A names-only LIST: the fallback way to learn about deletions and renames."""
    lists, _ = await imap.list_folders("*")
    return _listings(lists, {})


async def _changed_since(imap: ImapClient, cache: Cache, cached: dict[str, FolderState]) -> Discovery:
    """LIST-CHANGEDSINCE: only the folders above the watermark, with deletions and renames."""
    lists, statuses = await imap.list_changed_since(cache.watermark, _status_items(imap, uidvalidity=False))
    d = Discovery(
        DiscoveryStrategy.LIST_CHANGEDSINCE, complete=True, listed=len(lists), target_modseq=cache.watermark
    )
    for x in _listings(lists, statuses):
        if x.status is not None and x.status.highestmodseq is not None:
            d.target_modseq = max(d.target_modseq, x.status.highestmodseq)
        if any(a.upper() == "\\NONEXISTENT" for a in x.attributes):
            if x.name in cached:
                d.deleted.append(x.name)
            continue
        old = next((ln.oldname for ln in lists if ln.name == x.name and ln.oldname), None)
        if old is not None and old != x.name and old in cached:
            # Even onto a cached name (a swap): the engine applies them as a permutation.
            d.renamed.append((old, x.name))
        if x.selectable:
            d.changed[x.name] = x
    return d


async def _list_status(imap: ImapClient, status_window: int) -> list[FolderListing]:
    """LIST-STATUS: every folder with its STATUS in one command."""
    lists, statuses = await imap.list_folders("*", return_status=_status_items(imap, uidvalidity=True))
    return _listings(lists, statuses)


async def _list_status_per_folder(imap: ImapClient, status_window: int) -> list[FolderListing]:
    """LIST, then STATUS for each selectable folder."""
    lists, _ = await imap.list_folders("*")
    names = [x.name for x in _listings(lists, {}) if x.selectable]
    # Pipelined: one round trip per window, not per folder. A folder deleted between LIST
    # and STATUS answers NO: its status is None, so it is synced and found gone.
    items = _status_items(imap, uidvalidity=True)
    per_folder = await imap.status_many(names, items, window=status_window)
    return [
        FolderListing(x.name, x.delimiter, x.attributes, per_folder.get(x.name)) for x in _listings(lists, {})
    ]


_COMPLETE_LISTINGS: dict[DiscoveryStrategy, Callable[[ImapClient, int], Awaitable[list[FolderListing]]]] = {
    DiscoveryStrategy.LIST_STATUS: _list_status,
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER: _list_status_per_folder,
}


async def discover(
    imap: ImapClient,
    cache: Cache,
    strategy: DiscoveryStrategy,
    *,
    status_window: int = STATUS_WINDOW,
    full: bool = True,
) -> Discovery:
    """Run one discovery with `strategy` and compare it with the cache.

    `status_window`: how many STATUS commands list-status-per-folder keeps unanswered at once.
    `full`: without CONDSTORE, mark every folder changed (a full UID/FLAGS compare); else only
    those whose STATUS (MESSAGES UIDNEXT UNSEEN UIDVALIDITY) moved since the cache saw them.
    """
    cached = cache.folders()
    if strategy.incremental:
        return await _changed_since(imap, cache, cached)
    condstore = imap.has("CONDSTORE") or "QRESYNC" in imap.enabled
    listings = await _COMPLETE_LISTINGS[strategy](imap, status_window)
    d = Discovery(strategy, complete=True, listed=len(listings))
    present = set()
    for x in listings:
        if not x.selectable:
            continue
        present.add(x.name)
        if x.status is not None and x.status.highestmodseq is not None:
            d.target_modseq = max(d.target_modseq, x.status.highestmodseq)
        if _differs(x.status, cached.get(x.name), condstore, full):
            d.changed[x.name] = x
    d.deleted = sorted(set(cached) - present)
    d.renamed = renamed_by_uidvalidity(cached, d.deleted, listings)
    return d


def renamed_by_uidvalidity(
    cached: dict[str, FolderState], gone: Iterable[str], listings: Iterable[FolderListing]
) -> list[tuple[str, str]]:
    """Renames a server did not name: a folder new to the cache with the UIDVALIDITY (and, where
    both are known, the MAILBOXID) of a cached folder that is gone. Applied as renames, apps keep
    their message ids (a deletion and an addition announced the same messages again under new
    ids: found by the soak against Dovecot, whose NOTIFY drops rename notices under churn)."""
    by_uidvalidity: dict[int, str] = {}
    for name in gone:
        f = cached.get(name)
        if f is not None and f.uidvalidity:
            by_uidvalidity[f.uidvalidity] = name
    out: list[tuple[str, str]] = []
    for x in listings:
        st = x.status
        if x.name in cached or st is None or st.uidvalidity not in by_uidvalidity:
            continue
        old = by_uidvalidity[st.uidvalidity]
        known = cached[old].mailbox_id
        if known is not None and st.mailboxid is not None and known != st.mailboxid:
            continue
        del by_uidvalidity[st.uidvalidity]
        out.append((old, x.name))
    return out
