"""Selected-state commands about messages: CLOSE UNSELECT EXPUNGE SEARCH FETCH STORE COPY MOVE
(and their UID forms), with the RFC 7162 modifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cpmsync.imap import (
    CloseCommand,
    CopyCommand,
    CopyUid,
    ESearchData,
    ExpungeCommand,
    FetchAtt,
    FetchBody,
    FetchCommand,
    FetchData,
    MoveCommand,
    ResponseCode,
    SearchCommand,
    SearchData,
    SequenceSet,
    StatusResponse,
    StoreCommand,
    UnselectCommand,
    VanishedData,
)
from cpmsync.msgstore.fetch_render import body_section, bodystructure, envelope, parse_mime
from cpmsync.msgstore.records import FlagMode, MessageRecord, SearchFilter, UidSet
from cpmsync.msgstore.search_eval import (
    SearchContext,
    evaluate_search,
    uses_modseq,
    view_slice_by_seq,
    view_slice_by_uid,
)
from cpmsync.msgstore.session_base import (
    _FETCH_DATA,
    _FETCH_DATA_BATCH,
    _FETCH_DATA_BATCH_BYTES,
    _FETCH_SIMPLE,
    _MACROS,
    _SHORT_FETCH_MESSAGES,
    _SHORT_READ_BYTES,
    _aware,
    _Bad,
    _No,
    _ordered_set,
    _uidset,
    handles,
)
from cpmsync.msgstore.session_push import PushMixin

if TYPE_CHECKING:
    from cpmsync.msgstore.store import MessageStore

__all__ = ["MessageCommands"]


class MessageCommands(PushMixin):
    # ================================================================ selected

    def _uids_for(self, seqset: SequenceSet, uid: bool) -> list[int]:
        """UIDs in the view that `seqset` names; cost follows the view, never the range width
        (a client may send 1:4294967295)."""
        sel = self.sel
        assert sel is not None
        if not sel.uids:
            return []
        if uid:
            return view_slice_by_uid(seqset, sel.uids)
        n = len(sel.uids)
        if not seqset.has_star:
            for lo, hi in seqset.ranges:
                if max(lo, hi) > n:
                    raise _Bad("sequence number out of range")
        return view_slice_by_seq(seqset, sel.uids)

    @handles(CloseCommand)
    async def _close(self, cmd: CloseCommand) -> None:
        sel = self.sel
        assert sel is not None
        if not sel.readonly and sel.uids:
            await self._db(self.store.expunge, self.user, sel.id, UidSet.from_uids(sel.uids), origin=self)
        self.sel = None
        self.state.deselected()
        self._ok(cmd.tag, "CLOSE completed")

    @handles(UnselectCommand)
    async def _unselect(self, cmd: UnselectCommand) -> None:
        self.sel = None
        self.state.deselected()
        self._ok(cmd.tag, "UNSELECT completed")

    @handles(ExpungeCommand)
    async def _expunge(self, cmd: ExpungeCommand) -> None:
        sel = self.sel
        assert sel is not None
        if sel.readonly:
            raise _No("mailbox is read-only", "READ-ONLY")
        if cmd.uids is not None:
            if not self._ext("UIDPLUS"):
                raise _Bad("UID EXPUNGE needs UIDPLUS")
            uids = self._uids_for(cmd.uids, True)
        else:
            uids = list(sel.uids)
        if uids:
            res = await self._db(self.store.expunge, self.user, sel.id, UidSet.from_uids(uids), origin=self)
            await self._announce_expunged(res.uids)
        await self._after_command(allow_expunge=True)
        code = None
        if self.condstore and self.sel is not None:
            st = await self._db(self.store.status, self.user, sel.id)
            if not st.nomodseq:
                code = ResponseCode("HIGHESTMODSEQ", st.highestmodseq)
        self._ok(cmd.tag, "EXPUNGE completed", code)

    @handles(SearchCommand)
    async def _search(self, cmd: SearchCommand) -> None:
        sel = self.sel
        assert sel is not None and self.user is not None
        if cmd.return_opts is not None:
            unknown = set(cmd.return_opts) - {"MIN", "MAX", "COUNT", "ALL"}
            if unknown:
                raise _Bad(f"unknown search return option {sorted(unknown)[0]}")  # RFC 4731 3.1
        if cmd.charset is not None and cmd.charset.upper() not in ("US-ASCII", "UTF-8"):
            raise _No(f"charset {cmd.charset} is not supported", "BADCHARSET")
        user, mbid = self.user, sel.id
        view = list(sel.uids)
        recent = set(sel.recent)

        def run() -> tuple[list[int], dict[int, MessageRecord]]:
            if not view:
                return [], {}
            in_view = set(view)
            fetched = self.store.fetch(user, mbid, UidSet.from_uids(view))
            recs = {r.uid: r for r in fetched if r.uid in in_view}

            def store_search(flt: SearchFilter) -> set[int]:
                return set(self.store.search(user, mbid, flt).uids)

            ctx = SearchContext(view, recs, recent, store_search)
            return evaluate_search(cmd.criteria, ctx), recs

        try:
            found, recs = await self._db(run)
        except ValueError as e:
            raise _Bad(str(e)) from None
        with_modseq = uses_modseq(cmd.criteria)
        if with_modseq:
            if not self._ext("CONDSTORE"):
                raise _Bad("MODSEQ search needs CONDSTORE")
            await self._enable_condstore()
        ids = found if cmd.uid else [sel.seq_of(u) or 0 for u in found]
        reported = found
        if cmd.return_opts and found and set(cmd.return_opts) <= {"MIN", "MAX"}:
            # RFC 7162 3.1.5: with only MIN/MAX, MODSEQ is that of the messages returned
            reported = [found[0]] * ("MIN" in cmd.return_opts) + [found[-1]] * ("MAX" in cmd.return_opts)
        highest = max((recs[u].modseq for u in reported if u in recs), default=0)
        if cmd.return_opts is not None:
            opts = set(cmd.return_opts) or {"ALL"}
            items: dict[str, Any] = {}
            if ids:
                if "MIN" in opts:
                    items["MIN"] = min(ids)
                if "MAX" in opts:
                    items["MAX"] = max(ids)
                if "ALL" in opts:
                    items["ALL"] = SequenceSet.from_ints(ids)
            if "COUNT" in opts:
                items["COUNT"] = len(ids)
            if with_modseq and ids:
                items["MODSEQ"] = highest
            self._emit(ESearchData(cmd.tag, cmd.uid, items))
        else:
            self._emit(SearchData(tuple(ids), highest if with_modseq and ids else None))
        await self._after_command(allow_expunge=cmd.uid)
        self._ok(cmd.tag, "SEARCH completed")

    @handles(FetchCommand)
    async def _fetch(self, cmd: FetchCommand) -> None:
        sel = self.sel
        assert sel is not None
        if cmd.changedsince is not None:
            await self._enable_condstore()
        if cmd.vanished:
            if not cmd.uid or cmd.changedsince is None:
                raise _Bad("VANISHED needs UID FETCH with CHANGEDSINCE")
            if not self.qresync:
                raise _Bad("VANISHED needs ENABLE QRESYNC")
            earlier = await self._db(
                self.store.vanished_since, self.user, sel.id, cmd.changedsince, _uidset(cmd.seqset, sel.uids)
            )
            known = set(sel.uids)
            earlier = [u for u in earlier if u not in known]
            if earlier:
                self._emit(VanishedData(SequenceSet.from_ints(earlier), earlier=True))
        await self._fetch_items(cmd.seqset, cmd.items, cmd.uid, changedsince=cmd.changedsince)
        await self._after_command(allow_expunge=cmd.uid)
        self._ok(cmd.tag, "FETCH completed")

    async def _fetch_items(
        self,
        seqset: SequenceSet,
        raw_items: Sequence[FetchAtt],
        uid_mode: bool,
        *,
        changedsince: int | None = None,
    ) -> None:
        sel = self.sel
        assert sel is not None and self.user is not None
        items: list[FetchAtt] = []
        for it in raw_items:
            if isinstance(it, str) and it in _MACROS:
                items.extend(_MACROS[it])
            else:
                items.append(it)
        for it in items:
            if isinstance(it, str) and it not in _FETCH_SIMPLE and it not in _FETCH_DATA:
                raise _Bad(f"unknown FETCH item {it}")
            if it in ("EMAILID", "THREADID") and not self._ext("OBJECTID"):
                raise _Bad(f"{it} needs OBJECTID")
        if "MODSEQ" in items:
            if not self._ext("CONDSTORE"):
                raise _Bad("MODSEQ needs CONDSTORE")
            await self._enable_condstore()
        if uid_mode and "UID" not in items:
            items.insert(0, "UID")
        if changedsince is not None and "MODSEQ" not in items:
            items.append("MODSEQ")
        uids = self._uids_for(seqset, uid_mode)
        if not uids:
            return
        need_data = any(isinstance(i, FetchBody) or i in _FETCH_DATA for i in items)
        sets_seen = not sel.readonly and any(
            (isinstance(i, FetchBody) and not i.peek) or i in ("RFC822", "RFC822.TEXT") for i in items
        )
        store, user, mbid = self.store, self.user, sel.id
        if need_data:  # bound what one store call loads: by count and by bytes
            chunks, first = await self._db_read(
                lambda: _plan_data_fetch_now(store, user, mbid, uids, changedsince),
                lambda: _plan_data_fetch(store, user, mbid, uids, changedsince),
            )
        else:
            chunks = [uids]
            first = await self._db_read(
                lambda: _fetch_now(store, user, mbid, uids, changedsince),
                lambda: store.fetch(user, mbid, UidSet.from_uids(uids), changedsince=changedsince),
            )
        for i, chunk in enumerate(chunks):
            if not chunk:
                continue
            if i == 0:
                recs = first
            else:
                uset = UidSet.from_uids(chunk)
                recs = await self._db(
                    self.store.fetch, user, mbid, uset, changedsince=changedsince, with_data=need_data
                )
            seen_changed: dict[int, MessageRecord] = {}
            if sets_seen:
                unseen = [r.uid for r in recs if "\\Seen" not in r.flags]
                if unseen:
                    res = await self._db(
                        self.store.store_flags,
                        user,
                        mbid,
                        UidSet.from_uids(unseen),
                        FlagMode.ADD,
                        ["\\Seen"],
                        origin=self,
                    )
                    seen_changed = {r.uid: r for r in res.updated}
            for r in recs:
                seq = sel.seq_of(r.uid)
                if seq is None:
                    continue
                cur = seen_changed.get(r.uid, r)
                out: dict[str, Any] = {}
                mime = None
                for it in items:
                    if isinstance(it, FetchBody):
                        data = r.data or b""
                        out[it.response_key] = body_section(data, it)
                        continue
                    if it == "UID":
                        out["UID"] = r.uid
                    elif it == "FLAGS":
                        out["FLAGS"] = self._flags_of(cur)
                    elif it == "INTERNALDATE":
                        out["INTERNALDATE"] = _aware(r.internaldate)
                    elif it == "RFC822.SIZE":
                        out["RFC822.SIZE"] = r.size
                    elif it == "MODSEQ":
                        out["MODSEQ"] = cur.modseq
                    elif it == "EMAILID":  # RFC 8474 5.1
                        out["EMAILID"] = [r.emailid]
                    elif it == "THREADID":
                        out["THREADID"] = [r.threadid] if r.threadid else None
                    elif it == "ENVELOPE":
                        out["ENVELOPE"] = envelope(r.data or b"")
                    elif it in ("BODYSTRUCTURE", "BODY"):
                        mime = mime or parse_mime(r.data or b"")
                        out[it] = bodystructure(mime, extensible=it == "BODYSTRUCTURE")
                    elif it == "RFC822":
                        out["RFC822"] = r.data or b""
                    elif it == "RFC822.HEADER":
                        out["RFC822.HEADER"] = body_section(r.data or b"", FetchBody(text="HEADER"))
                    elif it == "RFC822.TEXT":
                        out["RFC822.TEXT"] = body_section(r.data or b"", FetchBody(text="TEXT"))
                if r.uid in seen_changed and "FLAGS" not in out:
                    out["FLAGS"] = self._flags_of(cur)
                    if self.condstore:
                        out["MODSEQ"] = cur.modseq
                await self._send(FetchData(seq, out))

    @handles(StoreCommand)
    async def _store(self, cmd: StoreCommand) -> None:
        sel = self.sel
        assert sel is not None
        if sel.readonly:
            raise _No("mailbox is read-only", "READ-ONLY")
        if cmd.unchangedsince is not None:
            if not self._ext("CONDSTORE"):
                raise _Bad("UNCHANGEDSINCE needs CONDSTORE")
            await self._enable_condstore()
        uids = self._uids_for(cmd.seqset, cmd.uid)
        mode = {"+": FlagMode.ADD, "-": FlagMode.REMOVE, "": FlagMode.REPLACE}[cmd.mode]
        flags = [f for f in cmd.flags if f.lower() != "\\recent"]
        modified_ids: list[int] = []
        if uids:
            res = await self._db(
                self.store.store_flags,
                self.user,
                sel.id,
                UidSet.from_uids(uids),
                mode,
                flags,
                unchangedsince=cmd.unchangedsince,
                origin=self,
            )
            for r in res.updated:
                seq = sel.seq_of(r.uid)
                if seq is None:
                    continue
                items: dict[str, Any] = {}
                if cmd.uid:
                    items["UID"] = r.uid
                if not cmd.silent:
                    items["FLAGS"] = self._flags_of(r)
                if self.condstore and (not cmd.silent or cmd.unchangedsince is not None):
                    items["MODSEQ"] = r.modseq
                if items and (not cmd.silent or "MODSEQ" in items):
                    await self._send(FetchData(seq, items))
            if res.modified:
                for u in res.modified.iter_uids():
                    if cmd.uid:
                        modified_ids.append(u)
                    elif (s := sel.seq_of(u)) is not None:
                        modified_ids.append(s)
        await self._after_command(allow_expunge=cmd.uid)
        code = ResponseCode("MODIFIED", SequenceSet.from_ints(modified_ids)) if modified_ids else None
        self._ok(cmd.tag, "STORE completed" if not modified_ids else "Conditional STORE failed", code)

    @handles(CopyCommand)
    async def _copy(self, cmd: CopyCommand) -> None:
        sel = self.sel
        assert sel is not None
        uids = self._uids_for(cmd.seqset, cmd.uid)
        code = None
        if uids:
            res = await self._db(
                self.store.copy, self.user, sel.id, UidSet.from_uids(uids), cmd.mailbox, origin=self
            )
            if self._ext("UIDPLUS") and res.src_uids:
                code = ResponseCode(
                    "COPYUID",
                    CopyUid(res.uidvalidity, SequenceSet.from_ints(res.src_uids), _ordered_set(res.dst_uids)),
                )
        else:
            await self._db(self.store.status, self.user, cmd.mailbox)  # NO [TRYCREATE] if missing
        await self._after_command(allow_expunge=cmd.uid)
        self._ok(cmd.tag, "COPY completed", code)

    @handles(MoveCommand)
    async def _move(self, cmd: MoveCommand) -> None:
        sel = self.sel
        assert sel is not None
        if sel.readonly:
            raise _No("mailbox is read-only", "READ-ONLY")
        uids = self._uids_for(cmd.seqset, cmd.uid)
        if uids:
            res = await self._db(
                self.store.move, self.user, sel.id, UidSet.from_uids(uids), cmd.mailbox, origin=self
            )
            c = res.copy
            if self._ext("UIDPLUS") and c.src_uids:
                code = ResponseCode(
                    "COPYUID",
                    CopyUid(c.uidvalidity, SequenceSet.from_ints(c.src_uids), _ordered_set(c.dst_uids)),
                )
                self._emit(StatusResponse(None, "OK", code, "Moved"))
            await self._announce_expunged(res.expunged)
        else:
            await self._db(self.store.status, self.user, cmd.mailbox)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "MOVE completed")


def _plan_data_fetch(
    store: MessageStore, user: str, mailbox_id: int, uids: list[int], changedsince: int | None
) -> tuple[list[list[int]], list[MessageRecord]]:
    """A FETCH of message bytes, its first store call: the messages' sizes cut into batches
    (`_chunks_by_size`), and the first batch's records with their bytes, in one call where it
    was two (a sync FETCHes one or a few messages per folder)."""
    meta = store.fetch(user, mailbox_id, UidSet.from_uids(uids), changedsince=changedsince)
    chunks = _chunks_by_size([(r.uid, r.size) for r in meta])
    if not chunks[0]:
        return chunks, []
    first_uids = UidSet.from_uids(chunks[0])
    return chunks, store.fetch(user, mailbox_id, first_uids, changedsince=changedsince, with_data=True)


def _plan_data_fetch_now(
    store: MessageStore, user: str, mailbox_id: int, uids: list[int], changedsince: int | None
) -> tuple[list[list[int]], list[MessageRecord]] | None:
    """`_plan_data_fetch` for the event loop (`_db_read`): None past _SHORT_FETCH_MESSAGES UIDs
    or a first batch of more than _SHORT_READ_BYTES, or when a read found nothing."""
    meta = _fetch_now(store, user, mailbox_id, uids, changedsince)
    if meta is None:
        return None
    chunks = _chunks_by_size([(r.uid, r.size) for r in meta])
    if sum(r.size for r in meta[: len(chunks[0])]) > _SHORT_READ_BYTES:
        return None
    first_uids = UidSet.from_uids(chunks[0])
    first = store.fetch_now(user, mailbox_id, first_uids, changedsince=changedsince, with_data=True)
    return None if first is None else (chunks, first)


def _fetch_now(
    store: MessageStore, user: str, mailbox_id: int, uids: list[int], changedsince: int | None
) -> list[MessageRecord] | None:
    """Metadata of at most _SHORT_FETCH_MESSAGES messages for the event loop (`_db_read`)."""
    if len(uids) > _SHORT_FETCH_MESSAGES:
        return None
    return store.fetch_now(user, mailbox_id, UidSet.from_uids(uids), changedsince=changedsince)


def _chunks_by_size(sized: list[tuple[int, int]]) -> list[list[int]]:
    """UIDs grouped so one chunk holds at most _FETCH_DATA_BATCH messages or ~_FETCH_DATA_BATCH_BYTES
    (a mailbox of 30 MB attachments must not be loaded into memory at once)."""
    out: list[list[int]] = [[]]
    total = 0
    for uid, size in sized:
        if out[-1] and (len(out[-1]) >= _FETCH_DATA_BATCH or total + size > _FETCH_DATA_BATCH_BYTES):
            out.append([])
            total = 0
        out[-1].append(uid)
        total += size
    return out
