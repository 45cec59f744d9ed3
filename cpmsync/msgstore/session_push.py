"""Push: apply other sessions' committed changes (ChangeHub events) to this session's view and
tell the client, at once under IDLE/NOTIFY, else before the next tagged reply (RFC 3501 7,
RFC 2177, RFC 5465). Own changes are ignored where the command already answered for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cpmsync.imap import (
    ExistsData,
    ExpungeData,
    FetchBody,
    FetchData,
    ListData,
    RecentData,
    SequenceSet,
    StatusData,
    VanishedData,
)
from cpmsync.imap.state import SubState
from cpmsync.msgstore.errors import StoreError
from cpmsync.msgstore.hub import EventKind, StoreEvent
from cpmsync.msgstore.listing import status_items
from cpmsync.msgstore.notify import event_name
from cpmsync.msgstore.records import MessageRecord, UidSet
from cpmsync.msgstore.session_base import (
    SessionBase,
    _Bad,
)

__all__ = ["PushMixin"]


class PushMixin(SessionBase):
    # ================================================================ push

    def _drain_events(self) -> None:
        """Apply every change committed so far (own echo ignored where we answered ourselves)."""
        sub = self._sub
        if sub is None:
            return
        while (ev := sub.get_nowait()) is not None:
            self._apply_event(ev)

    def _apply_event(self, ev: StoreEvent) -> None:
        own = ev.origin is self
        sel = self.sel
        if ev.kind is EventKind.OVERFLOW:
            if sel is not None:
                sel.resync = True
            return
        if ev.kind is EventKind.SUBSCRIBE:
            self.subscribed.add(ev.mailbox)
        elif ev.kind is EventKind.UNSUBSCRIBE:
            self.subscribed.discard(ev.mailbox)
        elif ev.kind is EventKind.RENAME and ev.old_name in self.subscribed:
            self.subscribed.discard(ev.old_name)
            self.subscribed.add(ev.mailbox)
        if sel is not None and ev.mailbox_id == sel.id and ev.mailbox_id != 0:
            if ev.kind is EventKind.APPEND:
                sel.pending_new.update(ev.uids)
            elif ev.kind is EventKind.EXPUNGE and not own:
                sel.pending_expunge.update(u for u in ev.uids if sel.seq_of(u) is not None)
                sel.pending_new.difference_update(ev.uids)
            elif ev.kind is EventKind.FLAGS and not own:
                sel.pending_flags.update(ev.uids)
            elif ev.kind is EventKind.RENAME:
                sel.name = ev.mailbox
            elif ev.kind is EventKind.DELETE:
                sel.pending_expunge.update(sel.uids)
                sel.pending_new.clear()
            if ev.kind not in (EventKind.RENAME, EventKind.DELETE):
                return
            # A rename or deletion of the open mailbox is MailboxName news all the same: without
            # it a NOTIFY client keeps the old name for good (the soak found it). Dovecot 2.3
            # announces it too, then ends the session at its next command ("IMAP session state
            # is inconsistent"): tests/msgstore/test_rfc5465_selected_vs_dovecot.py.
        spec = self.notify
        if spec is None or own:
            return
        name = event_name(ev.kind)
        if name is None:
            return
        mailbox = ev.mailbox
        if not spec.wants(mailbox, name, self.subscribed.__contains__) and not (
            ev.old_name and spec.wants(ev.old_name, name, self.subscribed.__contains__)
        ):
            return
        if name in ("MessageNew", "MessageExpunge", "FlagChange"):
            self._pending_status[ev.mailbox_id] = mailbox
        elif ev.kind is EventKind.CREATE:
            self._pending_lists.append(ListData((), "/", mailbox))
        elif ev.kind is EventKind.DELETE:
            self._pending_status.pop(ev.mailbox_id, None)
            self._pending_lists.append(ListData(("\\NonExistent",), "/", mailbox))
        elif ev.kind is EventKind.RENAME:
            self._pending_lists.append(ListData((), "/", mailbox, oldname=ev.old_name))
        elif ev.kind is EventKind.SUBSCRIBE:
            self._pending_lists.append(ListData(("\\Subscribed",), "/", mailbox))
        elif ev.kind is EventKind.UNSUBSCRIBE:
            self._pending_lists.append(ListData((), "/", mailbox))

    def _push_now(self) -> tuple[bool, bool, bool]:
        """Which selected-mailbox updates may go out while no command runs: (new, expunges, flags).

        NOTIFY without "selected": nothing (see `_selected_muted`). IDLE: everything (RFC 2177).
        NOTIFY: what its "selected" filter names; selected-delayed holds expunges until a command
        allows them (RFC 5465 5.2). Otherwise nothing (RFC 3501 7).
        """
        if self._selected_muted():
            return False, False, False
        if self.state.sub is SubState.IDLE:
            return True, True, True
        spec = self.notify
        if spec is not None and spec.has_selected:
            ev = spec.selected_events()
            return (
                "MessageNew" in ev,
                "MessageExpunge" in ev and not spec.selected_delayed,
                "FlagChange" in ev,
            )
        return False, False, False

    async def _flush_push(self) -> None:
        """Between commands: deliver what IDLE/NOTIFY ask to be delivered at once."""
        if self._sub is None:
            return
        self._drain_events()
        new, expunge, flags = self._push_now()
        if new or expunge or flags:
            try:
                await self._flush_selected(allow_expunge=expunge, allow_new=new, allow_flags=flags)
            except StoreError:
                pass
        if self.notify is not None:
            await self._flush_other()

    async def _flush_other(self) -> None:
        lists, self._pending_lists = self._pending_lists, []
        for r in lists:
            self._emit(r)
        pending, self._pending_status = self._pending_status, {}
        for mbid, name in pending.items():
            try:
                st = await self._db(self.store.status, self.user, mbid)
            except StoreError:
                continue
            items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
            if self.condstore:
                items.append("HIGHESTMODSEQ")
            self._emit(StatusData(name, status_items(st, items)))

    async def _flush_selected(
        self, *, allow_expunge: bool, allow_new: bool = True, allow_flags: bool = True
    ) -> None:
        sel = self.sel
        if sel is None:
            return
        if sel.resync:
            sel.resync = False
            now = await self._db(self.store.uids, self.user, sel.id)
            now_set = set(now)
            sel.pending_expunge.update(u for u in sel.uids if u not in now_set)
            known = set(sel.uids)
            sel.pending_new.update(u for u in now if u not in known)
            sel.pending_flags.update(u for u in sel.uids if u in now_set)
        if allow_expunge and sel.pending_expunge:
            gone = sorted(sel.pending_expunge)
            sel.pending_expunge.clear()
            sel.pending_flags.difference_update(gone)
            await self._announce_expunged(gone)
        if allow_new and sel.pending_new:
            last = sel.uids[-1] if sel.uids else 0
            new = sorted(u for u in sel.pending_new if u > last)
            sel.pending_new.clear()
            if new:
                sel.uids.extend(new)
                if not sel.readonly:  # new arrivals are \Recent for the first session told
                    sel.recent.update(await self._db(self.store.claim_recent, self.user, sel.id, new))
                self._emit(ExistsData(len(sel.uids)))
                self._emit(RecentData(len(sel.recent)))
                atts = self.notify.selected_fetch_atts() if self.notify else None
                if atts:
                    seqs = SequenceSet.from_ints(sel.seq_of(u) or 0 for u in new)
                    wanted = tuple(a for a in atts if isinstance(a, str | FetchBody))
                    try:
                        await self._fetch_items(seqs, wanted, False)
                    except _Bad:  # validated at NOTIFY SET; never let a push fail a command
                        pass
        if allow_flags and sel.pending_flags:
            uids = sorted(u for u in sel.pending_flags if sel.seq_of(u) is not None)
            sel.pending_flags.clear()
            if uids:
                recs = await self._db(self.store.fetch, self.user, sel.id, UidSet.from_uids(uids))
                for r in recs:
                    seq = sel.seq_of(r.uid)
                    if seq is None:
                        continue
                    items: dict[str, Any] = {"UID": r.uid, "FLAGS": self._flags_of(r)}
                    if self.condstore:
                        items["MODSEQ"] = r.modseq
                    await self._send(FetchData(seq, items))

    async def _announce_expunged(self, uids: Sequence[int]) -> None:
        """EXPUNGE per message (descending, so numbers stay valid) or one VANISHED (QRESYNC)."""
        sel = self.sel
        assert sel is not None
        if self.qresync:
            present = [u for u in uids if sel.remove(u) is not None]
            if present:
                self._emit(VanishedData(SequenceSet.from_ints(present)))
            return
        seqs = sorted((s for u in uids if (s := sel.seq_of(u)) is not None), reverse=True)
        for s in seqs:
            del sel.uids[s - 1]
            await self._send(ExpungeData(s))
        sel.recent.intersection_update(sel.uids)

    def _selected_muted(self) -> bool:
        """NOTIFY without a `selected` filter: other sessions' changes to the selected mailbox
        are not reported at all, neither now nor after it is closed (RFC 5465 5.1; Dovecot 2.3
        does the same at every command boundary). The session's view stays as it was told, so
        sequence numbers stay consistent; a client that wants that news asks for `selected`.
        """
        return self.notify is not None and not self.notify.has_selected

    async def _after_command(self, *, allow_expunge: bool) -> None:
        """Before a tagged reply: untagged updates the client must learn about (RFC 3501 7)."""
        if self._sub is None:
            return
        self._drain_events()
        if not self._selected_muted():
            try:
                await self._flush_selected(allow_expunge=allow_expunge)
            except StoreError:  # e.g. the selected mailbox was deleted meanwhile: the command still succeeded
                pass
        if self.notify is not None:
            await self._flush_other()

    def _flags_of(self, r: MessageRecord) -> tuple[str, ...]:
        flags = sorted(r.flags)
        if self.sel is not None and r.uid in self.sel.recent:
            flags.append("\\Recent")
        return tuple(flags)
