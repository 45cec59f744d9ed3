"""Per-folder sync: ask the server what changed in one mailbox, then commit it in ONE transaction.

All IMAP I/O for a folder happens first and only then is the cache written (`cache.folder_sync`),
so a cut, a timeout or a stop mid-folder leaves the cache exactly as before that folder: the
folder stays pending and its changes stay above the watermark until a later sync commits them.
The method is the cheapest the server allows: QRESYNC (RFC 7162 3.2.5), else CONDSTORE
CHANGEDSINCE + UID SEARCH for expunges, else a full UID/FLAGS comparison.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cpmsync.daemon.cache import Cache, FolderState, FolderSync, MessageData
from cpmsync.daemon.headers import (
    HEADER_FIELDS,
    decode_words,
    envelope_addresses,
    field_addresses,
    garbled_envelope,
    header_addresses,
    header_date,
    header_fields,
    usable,
)
from cpmsync.daemon.imap_client import CommandResult, ImapClient, ImapCommandError
from cpmsync.daemon.preview import MIME_FIELDS, needs_more, text_preview
from cpmsync.daemon.settings import ImapSettings
from cpmsync.imap import (
    Address,
    Envelope,
    ExistsData,
    FetchBody,
    FetchCommand,
    FetchData,
    QresyncParams,
    SearchCommand,
    SearchKey,
    SelectCommand,
    SequenceSet,
    StatusResponse,
    VanishedData,
)
from cpmsync.imap.responses import ESearchData, SearchData
from cpmsync.imap.seqset import STAR
from cpmsync.logs import kv

__all__ = [
    "FolderChanges",
    "FolderGone",
    "apply_changes",
    "fetch_folder_changes",
    "sync_folder",
    "uid_search",
]

log = logging.getLogger("cpmsync.daemon.sync")


@dataclass
class FolderChanges:
    """What one folder sync learned from the server, before anything is written."""

    name: str
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    exists: int | None = None
    method: str = "full"
    vanished: set[int] = field(default_factory=set)
    flags: dict[int, tuple[tuple[str, ...], int | None]] = field(default_factory=dict)
    new: list[MessageData] = field(default_factory=list)
    delimiter: str | None = None
    attributes: tuple[str, ...] | None = None


class FolderGone(Exception):
    """SELECT said NONEXISTENT: the folder was deleted (or renamed) on the server."""


def tidy_flags(flags: tuple[str, ...] | None) -> tuple[str, ...]:
    # \Recent is per session (RFC 3501 2.3.2): mirroring it would flap on every reconnect.
    return tuple(f for f in flags or () if f.upper() != "\\RECENT")


@functools.lru_cache(maxsize=256)
def _flag_set(flags: tuple[str, ...] | None) -> frozenset[str]:
    """`tidy_flags` as a set, once per distinct FLAGS list: a folder's messages share a few."""
    return frozenset(tidy_flags(flags))


MIME_ITEM = FetchBody(peek=True, text="HEADER.FIELDS", fields=MIME_FIELDS)
"""Fetched with the TEXT prefix: how to decode it (transfer encoding, charset, MIME parts)."""


@functools.lru_cache(maxsize=64)
def _key_kind(key: str) -> str:
    """'mime', 'raw' (From/To) or '' for a FETCH item's key; the same few keys come back with every
    message, so each is classified once (90,000 checks in a first sync of 5,000 messages)."""
    k = key.upper()
    if k.startswith("BODY[HEADER.FIELDS (CONTENT-TYPE"):
        return "mime"
    return "raw" if k.startswith("BODY[HEADER.FIELDS") else ""


def _is_raw_key(key: str) -> bool:
    return _key_kind(key) == "raw"


def _header_blocks(fd: FetchData) -> tuple[bytes | None, bytes | None]:
    """(raw From/To fields, MIME fields) of a FETCH answer, in one pass over its items."""
    raw: bytes | None = None
    mime: bytes | None = None
    for k, v in fd.items.items():
        if isinstance(v, bytes):
            kind = _key_kind(k)
            if kind == "raw" and raw is None:
                raw = v
            elif kind == "mime" and mime is None:
                mime = v
    return raw, mime


def _addresses(
    addrs: tuple[Address, ...] | None, ok: bool, fields: dict[str, str] | None, name: str
) -> str | None:
    """ENVELOPE's addresses (`ok`: usable ones), or the raw header field's when they are not."""
    if fields is None or ok:
        return envelope_addresses(addrs)
    return field_addresses(fields.get(name)) or envelope_addresses(addrs)


def message_from_fetch(fd: FetchData, preview_key: str, preview_bytes: int) -> MessageData | None:
    uid = fd.uid
    if uid is None:
        return None
    env: Envelope | None = fd.envelope
    body = fd.items.get(preview_key)
    raw, mime = _header_blocks(fd)
    from_, to = (env.from_, env.to) if env else (None, None)
    ok_from, ok_to = usable(from_), usable(to)
    # The raw fields are read (once, for both) only when ENVELOPE garbled an address.
    fields = header_fields(raw) if raw is not None and not (ok_from and ok_to) else None
    return MessageData(
        uid=uid,
        modseq=fd.modseq,
        flags=_flag_set(fd.flags),
        internaldate=fd.internaldate,
        size=fd.size,
        from_=_addresses(from_, ok_from, fields, "FROM"),
        to=_addresses(to, ok_to, fields, "TO"),
        subject=decode_words(env.subject) if env else None,
        date=header_date(env.date) if env else None,
        message_id=env.message_id if env else None,
        preview=text_preview(mime, body if isinstance(body, bytes) else None, preview_bytes),
    )


def selection_gone(res: CommandResult) -> bool:
    """A SELECT's NO that says the mailbox does not exist (deleted or renamed on the server)."""
    st = res.status
    return st.status != "OK" and (
        (st.code is not None and st.code.name == "NONEXISTENT") or "exist" in st.text.lower()
    )


async def _select(imap: ImapClient, cmd: SelectCommand) -> list[object]:
    try:
        res = await imap.select(cmd)
    except ImapCommandError as e:
        if selection_gone(e.result):
            raise FolderGone(cmd.mailbox) from e
        raise
    return list(res.responses)


@dataclass
class FolderPlan:
    """What the cache knows of a folder and the SELECT that asks the server what changed since."""

    name: str
    cached: FolderState | None
    flags_now: dict[int, tuple[int, frozenset[str]]]
    known: list[int]
    qresync: bool
    condstore: bool
    use_qresync: bool
    cmd: SelectCommand


def plan_folder(
    imap: ImapClient,
    name: str,
    cached: FolderState | None,
    flags_now: dict[int, tuple[int, frozenset[str]]],
) -> FolderPlan:
    """EXAMINE with QRESYNC when the cache has a MODSEQ and UIDs for the folder, else plain/CONDSTORE."""
    known = sorted(flags_now)
    qresync = "QRESYNC" in imap.enabled
    condstore = qresync or "CONDSTORE" in imap.enabled or imap.has("CONDSTORE")
    use_qresync = bool(qresync and cached and cached.uidvalidity and cached.last_synced_modseq > 0 and known)
    if use_qresync:
        assert cached is not None and cached.uidvalidity is not None
        params = QresyncParams(cached.uidvalidity, cached.last_synced_modseq, SequenceSet.from_ints(known))
        cmd = SelectCommand("", name, readonly=True, qresync=params)
    else:
        cmd = SelectCommand("", name, readonly=True, condstore=condstore and not qresync)
    return FolderPlan(name, cached, flags_now, known, qresync, condstore, use_qresync, cmd)


def read_select(
    plan: FolderPlan, ch: FolderChanges, responses: Sequence[object]
) -> tuple[bool, dict[int, FetchData]]:
    """Fill `ch` from a SELECT's untagged data; (NOMODSEQ said, QRESYNC FETCHes by UID)."""
    nomodseq = False
    qfetch: dict[int, FetchData] = {}
    for r in responses:
        if isinstance(r, StatusResponse) and r.code is not None:
            n, v = r.code.name, r.code.value
            if n == "UIDVALIDITY" and isinstance(v, int):
                ch.uidvalidity = v
            elif n == "UIDNEXT" and isinstance(v, int):
                ch.uidnext = v
            elif n == "HIGHESTMODSEQ" and isinstance(v, int):
                ch.highestmodseq = v
            elif n == "NOMODSEQ":
                nomodseq = True
        elif isinstance(r, ExistsData):
            ch.exists = r.count
        elif isinstance(r, VanishedData) and plan.use_qresync:
            ch.vanished.update(u for u in plan.known if u in r.uids)
        elif isinstance(r, FetchData) and r.uid is not None:
            qfetch[r.uid] = r
    if nomodseq:
        # Recorded as HIGHESTMODSEQ 0: LIST-CHANGEDSINCE never lists this folder (CR I.5), so
        # the catch-up STATUSes the folders the cache knows as NOMODSEQ (SyncEngine).
        ch.highestmodseq = 0
    return nomodseq, qfetch


async def fetch_folder_changes(
    imap: ImapClient,
    cache: Cache,
    name: str,
    settings: ImapSettings,
    *,
    delimiter: str | None = None,
    attributes: tuple[str, ...] | None = None,
) -> FolderChanges:
    """All the server-side work of one folder sync; raises FolderGone or an ImapError."""
    cached = cache.folder(name)
    plan = plan_folder(imap, name, cached, cache.message_flags(name) if cached else {})
    flags_now, known, use_qresync, condstore = plan.flags_now, plan.known, plan.use_qresync, plan.condstore
    ch = FolderChanges(name, delimiter=delimiter, attributes=attributes)
    responses = await _select(imap, plan.cmd)
    nomodseq, qfetch = read_select(plan, ch, responses)
    if nomodseq:
        condstore = False
    reset = bool(cached and cached.uidvalidity and ch.uidvalidity and cached.uidvalidity != ch.uidvalidity)
    if reset:
        log.info("uidvalidity changed: resyncing folder", extra=kv(folder=name))
        flags_now, known, use_qresync = {}, [], False
    max_known = known[-1] if known else 0
    new_uids: set[int] = set()
    if ch.exists == 0:
        ch.vanished = set(known)
        ch.method = "empty"
    elif use_qresync:
        ch.method = "qresync"
        for uid, fd in qfetch.items():
            if uid in flags_now:
                if fd.flags is not None:
                    ch.flags[uid] = (tidy_flags(fd.flags), fd.modseq)
            elif uid < max_known:
                new_uids.add(uid)
    elif condstore and cached and cached.last_synced_modseq > 0 and known:
        ch.method = "condstore"
        res = await imap.execute(
            FetchCommand(
                "",
                SequenceSet(((1, STAR),)),
                ("UID", "FLAGS"),
                uid=True,
                changedsince=cached.last_synced_modseq,
            )
        )
        for r in res.responses:
            if isinstance(r, FetchData) and r.uid in flags_now and r.flags is not None:
                ch.flags[r.uid] = (tidy_flags(r.flags), r.modseq)
        server = await _uid_search_all(imap)
        ch.vanished = set(known) - server
        new_uids = {u for u in server if u not in flags_now}  # exact: no "n:*" tail needed
    else:
        ch.method = "full"
        items: tuple[str, ...] = ("UID", "FLAGS", "MODSEQ") if condstore else ("UID", "FLAGS")
        res = await imap.execute(FetchCommand("", SequenceSet(((1, STAR),)), items, uid=True))
        server_uids: set[int] = set()
        for r in res.responses:
            if isinstance(r, FetchData) and r.uid is not None:
                server_uids.add(r.uid)
                if r.uid in flags_now:
                    old = flags_now[r.uid][1]
                    if r.flags is not None and _flag_set(r.flags) != old:
                        ch.flags[r.uid] = (tidy_flags(r.flags), r.modseq)
                else:
                    new_uids.add(r.uid)
        ch.vanished = set(known) - server_uids
        if new_uids:
            ch.new = await _fetch_new(imap, settings, SequenceSet.from_ints(sorted(new_uids)), condstore, 0)
        return ch
    if ch.exists != 0:
        # Only look past the known UIDs when the server holds more messages than we account for:
        # after the newest message was expunged, UIDNEXT stays above max_known + 1 for good.
        expected = len(known) - len(ch.vanished) + len(new_uids)
        need_tail = ch.method == "qresync" and (ch.exists is None or ch.exists > expected)
        ranges = list(SequenceSet.from_ints(sorted(new_uids)).ranges) if new_uids else []
        if need_tail:
            ranges.append((max_known + 1, STAR))
        if ranges:
            ch.new = await _fetch_new(imap, settings, SequenceSet(tuple(ranges)), condstore, max_known)
            ch.new = [m for m in ch.new if m.uid not in flags_now]
    return ch


async def _uid_search_all(imap: ImapClient) -> set[int]:
    return await uid_search(imap, (SearchKey("ALL"),))


async def uid_search(imap: ImapClient, keys: tuple[SearchKey, ...]) -> set[int]:
    """The UIDs a UID SEARCH answers, from SEARCH or ESEARCH data."""
    res = await imap.execute(SearchCommand("", keys, uid=True))
    out: set[int] = set()
    for r in res.responses:
        if isinstance(r, SearchData):
            out.update(r.ids)
        elif isinstance(r, ESearchData) and r.all is not None:
            out.update(r.all.iter_ints(0))
    return out


RAW_ADDRESSES = FetchBody(peek=True, text="HEADER.FIELDS", fields=HEADER_FIELDS)


def new_fetch(
    settings: ImapSettings, uids: SequenceSet, condstore: bool, *, raw_addresses: bool = False
) -> FetchCommand:
    """The UID FETCH of new messages: what an event and a summary show, and a preview prefix.

    `raw_addresses`: the raw From/To as well, once the server has garbled an ENVELOPE address on
    this connection (Dovecot and `tel:` URIs), instead of a second FETCH per folder for them."""
    items: list[str | FetchBody] = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    if condstore:
        items.insert(2, "MODSEQ")
    if raw_addresses:
        items.append(RAW_ADDRESSES)
    if settings.preview_bytes > 0:
        items += [MIME_ITEM, _preview_item(settings.preview_bytes)]
    return FetchCommand("", uids, tuple(items), uid=True)


def _preview_item(nbytes: int) -> FetchBody:
    return FetchBody(peek=True, text="TEXT", partial=(0, max(nbytes, 1)))


_LONGER, _RAW, _BODIES = "longer-previews", "raw-addresses", "bodies"


@dataclass
class NewMessages:
    """New messages read from a `new_fetch`, and what a follow-up FETCH still has to complete."""

    out: dict[int, MessageData] = field(default_factory=dict)
    short: dict[int, bytes | None] = field(default_factory=dict)  # uid -> MIME fields, preview too short
    garbled: list[int] = field(default_factory=list)  # ENVELOPE addresses unusable

    def messages(self) -> list[MessageData]:
        return [self.out[u] for u in sorted(self.out)]


@dataclass(frozen=True)
class Followup:
    """A FETCH completing new messages in the same mailbox (longer previews, raw addresses, bodies)."""

    kind: str
    cmd: FetchCommand


def read_new(
    imap: ImapClient,
    settings: ImapSettings,
    cmd: FetchCommand,
    responses: Sequence[object],
    above: int,
    folder: str | None,
) -> NewMessages:
    """The messages a `new_fetch` returned; news that came with them goes back to the push queue."""
    preview_key = _preview_item(settings.preview_bytes).response_key
    uids = cmd.seqset
    nm = NewMessages()
    explicit = _no_star(uids)
    star = uids.has_star
    for fd in responses:
        if not isinstance(fd, FetchData):
            continue
        m = message_from_fetch(fd, preview_key, settings.preview_bytes)
        if m is not None and fd.envelope is not None:
            # Ours. "n:*" with n above the largest UID still returns the last message (RFC 3501
            # 6.4.8): a known one, dropped here, never news (requeueing it looped, demo-needs #4).
            if (star and m.uid > above) or explicit.contains(m.uid):
                nm.out[m.uid] = m
                body = fd.items.get(preview_key)
                if m.preview is None and isinstance(body, bytes):  # else it needs no more
                    _raw, mime = _header_blocks(fd)
                    if needs_more(mime, body, settings.preview_bytes, m.preview):
                        nm.short[m.uid] = mime
                if garbled_envelope(fd.envelope):
                    imap.fetch_raw_addresses = True
                    if not any(_is_raw_key(k) for k in fd.items):
                        nm.garbled.append(m.uid)
            continue
        # No ENVELOPE: not an answer to this FETCH but news (a flag change by another client).
        imap.push.put_back(fd, folder)
    return nm


def followups(settings: ImapSettings, nm: NewMessages) -> list[Followup]:
    """The FETCHes that complete `nm` (none in the common case): run them in the same mailbox."""
    out: list[Followup] = []
    if nm.short and settings.preview_retry_bytes > settings.preview_bytes:
        # A second, longer TEXT prefix for the few multipart/CPIM messages whose first one ended
        # before their text part; only those messages, so the common case costs nothing more.
        item = FetchBody(peek=True, text="TEXT", partial=(0, settings.preview_retry_bytes))
        out.append(
            Followup(
                _LONGER, FetchCommand("", SequenceSet.from_ints(sorted(nm.short)), ("UID", item), uid=True)
            )
        )
    if nm.garbled:
        # From/To from the raw header fields, for messages whose ENVELOPE garbled them. CPM
        # `<tel:+1...>` senders come back as `(NIL NIL "tel" "SYNTAX_ERROR")` from Dovecot; a
        # second FETCH only for those messages: servers that parse them (msgstore) cost no byte more.
        out.append(
            Followup(
                _RAW,
                FetchCommand("", SequenceSet.from_ints(sorted(nm.garbled)), ("UID", RAW_ADDRESSES), uid=True),
            )
        )
    if settings.fetch_bodies:
        small = [u for u, m in nm.out.items() if m.size is not None and m.size <= settings.max_body_bytes]
        if small:
            out.append(
                Followup(
                    _BODIES,
                    FetchCommand(
                        "", SequenceSet.from_ints(sorted(small)), ("UID", FetchBody(peek=True)), uid=True
                    ),
                )
            )
    return out


def read_followup(
    imap: ImapClient,
    settings: ImapSettings,
    f: Followup,
    responses: Sequence[object],
    nm: NewMessages,
    folder: str | None,
) -> None:
    """Complete `nm.out` from a follow-up's answer; a message it misses keeps what it had."""
    item = f.cmd.items[1]
    assert isinstance(item, FetchBody)
    for fd in responses:
        if not isinstance(fd, FetchData):
            continue
        m = nm.out.get(fd.uid) if fd.uid is not None else None
        if f.kind == _BODIES:
            b = fd.items.get(item.response_key)
            if m is not None and isinstance(b, bytes):
                nm.out[m.uid] = dataclasses.replace(m, body=b)
            continue
        if f.kind == _LONGER:
            body = fd.items.get(item.response_key)
            if m is None or fd.uid not in nm.short or not isinstance(body, bytes):
                imap.push.put_back(fd, folder)  # news, not our answer
                continue
            preview = text_preview(nm.short.get(m.uid), body, settings.preview_bytes)
            nm.out[m.uid] = dataclasses.replace(m, preview=preview)
            continue
        raws = [v for k, v in fd.items.items() if k.upper().startswith("BODY[HEADER.FIELDS")]
        if m is None or m.uid not in nm.garbled or not raws:
            imap.push.put_back(fd, folder)  # news, not our answer
            continue
        raw = raws[0] if isinstance(raws[0], bytes) else None
        nm.out[m.uid] = dataclasses.replace(
            m,
            from_=header_addresses(raw, "From") or m.from_,
            to=header_addresses(raw, "To") or m.to,
        )


async def _fetch_new(
    imap: ImapClient, settings: ImapSettings, uids: SequenceSet, condstore: bool, above: int
) -> list[MessageData]:
    cmd = new_fetch(settings, uids, condstore, raw_addresses=imap.fetch_raw_addresses)
    res = await imap.execute(cmd)
    nm = read_new(imap, settings, cmd, res.responses, above, imap.selected)
    for f in followups(settings, nm):
        res = await imap.execute(f.cmd)
        read_followup(imap, settings, f, res.responses, nm, imap.selected)
    return nm.messages()


def _no_star(s: SequenceSet) -> SequenceSet:
    rngs = tuple(r for r in s.ranges if STAR not in r)
    return SequenceSet(rngs) if rngs else SequenceSet(((0, 0),))


def apply_changes(cache: Cache, ch: FolderChanges) -> None:
    """Write one folder's changes and their events in a single cache transaction."""
    with cache.folder_sync(ch.name) as fs:
        _apply(fs, ch)


def apply_changes_many(cache: Cache, changes: Sequence[FolderChanges]) -> None:
    """Write several folders' changes and their events in a single cache transaction."""
    with cache.folders_sync([ch.name for ch in changes]) as folder:
        for ch in changes:
            _apply(folder(ch.name), ch)
    for ch in changes:
        log.debug(
            "folder synced",
            extra=kv(
                folder=ch.name,
                method=ch.method,
                new=len(ch.new),
                flags=len(ch.flags),
                vanished=len(ch.vanished),
            ),
        )


def _apply(fs: FolderSync, ch: FolderChanges) -> None:
    fs.set_status(
        uidvalidity=ch.uidvalidity,
        uidnext=ch.uidnext,
        highestmodseq=ch.highestmodseq,
        delimiter=ch.delimiter,
        attributes=ch.attributes,
    )
    if ch.vanished:
        fs.vanish(sorted(ch.vanished), modseq=ch.highestmodseq)
    for uid, (flags, modseq) in sorted(ch.flags.items()):
        fs.set_flags(uid, flags, modseq)
    for m in ch.new:
        fs.add_message(m)


async def sync_folder(
    imap: ImapClient,
    cache: Cache,
    name: str,
    settings: ImapSettings,
    *,
    delimiter: str | None = None,
    attributes: tuple[str, ...] | None = None,
) -> FolderChanges | None:
    """Sync one folder; None when the server says it no longer exists (the cache drops it)."""
    try:
        ch = await fetch_folder_changes(
            imap, cache, name, settings, delimiter=delimiter, attributes=attributes
        )
    except FolderGone:
        if cache.delete_folder(name):
            log.info("folder gone on the server", extra=kv(folder=name))
        return None
    apply_changes(cache, ch)
    log.debug(
        "folder synced",
        extra=kv(
            folder=name, method=ch.method, new=len(ch.new), flags=len(ch.flags), vanished=len(ch.vanished)
        ),
    )
    return ch
