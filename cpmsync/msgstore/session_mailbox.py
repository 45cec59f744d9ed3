"""Authenticated-state commands about mailboxes: ENABLE SELECT/EXAMINE CREATE DELETE RENAME
SUBSCRIBE UNSUBSCRIBE NAMESPACE LIST LSUB STATUS APPEND IDLE NOTIFY COMPRESS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cpmsync.imap import (
    AppendCommand,
    AppendUid,
    CompressCommand,
    ContinuationRequest,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    EnabledData,
    ExistsData,
    FetchData,
    FlagsData,
    IdleCommand,
    ListCommand,
    ListData,
    LsubCommand,
    NamespaceCommand,
    NamespaceData,
    NamespaceDesc,
    NotifyCommand,
    RecentData,
    RenameCommand,
    ResponseCode,
    SelectCommand,
    SequenceSet,
    StatusCommand,
    StatusData,
    StatusResponse,
    SubscribeCommand,
    UnsubscribeCommand,
    VanishedData,
)
from cpmsync.msgstore.listing import STATUS_ITEMS, list_responses, status_items
from cpmsync.msgstore.mailbox_pattern import PatternSet
from cpmsync.msgstore.notify import NotifyError, NotifySpec
from cpmsync.msgstore.records import MailboxListing
from cpmsync.msgstore.session_base import (
    _FETCH_DATA,
    _FETCH_SIMPLE,
    _MACROS,
    _SHORT_SELECT_MESSAGES,
    _SYSTEM_FLAGS,
    _Bad,
    _No,
    _Selected,
    _uidset,
    handles,
)
from cpmsync.msgstore.session_push import PushMixin

__all__ = ["MailboxCommands"]

# An APPEND of at most this many bytes is a short store call (`_db_short`): a chat message, a
# delivery report; a large file transfer goes to a worker thread whatever the load.
_SHORT_APPEND_BYTES = 256 * 1024


class MailboxCommands(PushMixin):
    # ================================================================ authenticated

    @handles(EnableCommand)
    async def _enable(self, cmd: EnableCommand) -> None:
        enabled: list[str] = []
        for cap in cmd.capabilities:
            if cap == "CONDSTORE" and self._ext("CONDSTORE"):
                if not self.condstore:
                    enabled.append("CONDSTORE")
                self.condstore = True
            elif cap == "QRESYNC" and self._ext("QRESYNC"):
                if not self.qresync:
                    enabled.append("QRESYNC")
                self.qresync = True
                self.condstore = True
        self._emit(EnabledData(tuple(enabled)))
        self._ok(cmd.tag, "ENABLE completed")

    @handles(SelectCommand)
    async def _select(self, cmd: SelectCommand) -> None:
        assert self.user is not None
        if cmd.qresync is not None and not self.qresync:
            raise _Bad("QRESYNC parameter needs ENABLE QRESYNC first")
        if cmd.condstore:
            if not self._ext("CONDSTORE"):
                raise _Bad("CONDSTORE is not enabled")
            self.condstore = True
        had = self.sel is not None
        self.sel = None
        self.state.deselected()
        if had and self._ext("QRESYNC"):
            self._emit(StatusResponse(None, "OK", ResponseCode("CLOSED"), "Previous mailbox closed"))
        self._drain_events()  # changes up to now are in what select() reads
        store, user, name, readonly = self.store, self.user, cmd.mailbox, cmd.readonly
        info = await self._db_read(
            lambda: store.select_now(user, name, readonly=readonly, max_messages=_SHORT_SELECT_MESSAGES),
            lambda: store.select(user, name, readonly=readonly),
        )
        st = info.status
        flags = (*_SYSTEM_FLAGS, *info.keywords)
        self._emit(FlagsData(flags))
        perm: tuple[str, ...] = () if cmd.readonly else (*flags, "\\*")
        self._emit(StatusResponse(None, "OK", ResponseCode("PERMANENTFLAGS", perm), "Limited"))
        self._emit(ExistsData(len(info.uids)))
        self._emit(RecentData(len(info.recent_uids)))
        if info.first_unseen:
            self._emit(StatusResponse(None, "OK", ResponseCode("UNSEEN", info.first_unseen), "First unseen"))
        self._emit(StatusResponse(None, "OK", ResponseCode("UIDVALIDITY", st.uidvalidity), "UIDs valid"))
        self._emit(StatusResponse(None, "OK", ResponseCode("UIDNEXT", st.uidnext), "Predicted next UID"))
        if self._ext("CONDSTORE"):
            if st.nomodseq:
                self._emit(StatusResponse(None, "OK", ResponseCode("NOMODSEQ"), "No mod-sequences"))
            else:
                code = ResponseCode("HIGHESTMODSEQ", st.highestmodseq)
                self._emit(StatusResponse(None, "OK", code, "Highest"))
        if self._ext("OBJECTID"):
            self._emit(StatusResponse(None, "OK", ResponseCode("MAILBOXID", st.mailboxid), "Ok"))
        self.sel = _Selected(
            id=st.id,
            name=st.name,
            readonly=cmd.readonly,
            uids=list(info.uids),
            recent=set(info.recent_uids),
            keywords={k.lower(): k for k in info.keywords},
        )
        self.state.selected()
        q = cmd.qresync
        if q is not None and q.uidvalidity == st.uidvalidity and not st.nomodseq:
            known = _uidset(q.known_uids, self.sel.uids) if q.known_uids is not None else None
            changes = await self._db(self.store.changes_since, self.user, st.id, q.modseq, known)
            vanished = [u for u in changes.vanished if u < st.uidnext]
            if vanished:
                self._emit(VanishedData(SequenceSet.from_ints(vanished), earlier=True))
            for r in changes.changed:
                seq = self.sel.seq_of(r.uid)
                if seq is not None:
                    await self._send(
                        FetchData(seq, {"UID": r.uid, "FLAGS": self._flags_of(r), "MODSEQ": r.modseq})
                    )
        access = "READ-ONLY" if cmd.readonly else "READ-WRITE"
        self._ok(cmd.tag, f"{'EXAMINE' if cmd.readonly else 'SELECT'} completed", ResponseCode(access))

    @handles(CreateCommand)
    async def _create(self, cmd: CreateCommand) -> None:
        st = await self._db(self.store.create_mailbox, self.user, cmd.mailbox, origin=self)
        await self._after_command(allow_expunge=True)
        code = ResponseCode("MAILBOXID", st.mailboxid) if self._ext("OBJECTID") else None  # RFC 8474 4.1
        self._ok(cmd.tag, "CREATE completed", code)

    @handles(DeleteCommand)
    async def _delete(self, cmd: DeleteCommand) -> None:
        await self._db(self.store.delete_mailbox, self.user, cmd.mailbox, origin=self)
        if self.sel is not None and self.sel.name == cmd.mailbox:
            self.sel = None
            self.state.deselected()
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "DELETE completed")

    @handles(RenameCommand)
    async def _rename(self, cmd: RenameCommand) -> None:
        await self._db(self.store.rename_mailbox, self.user, cmd.old, cmd.new, origin=self)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "RENAME completed")

    @handles(SubscribeCommand)
    async def _subscribe(self, cmd: SubscribeCommand) -> None:
        await self._db(self.store.subscribe, self.user, cmd.mailbox, origin=self)
        self.subscribed.add(cmd.mailbox)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "SUBSCRIBE completed")

    @handles(UnsubscribeCommand)
    async def _unsubscribe(self, cmd: UnsubscribeCommand) -> None:
        await self._db(self.store.unsubscribe, self.user, cmd.mailbox, origin=self)
        self.subscribed.discard(cmd.mailbox)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "UNSUBSCRIBE completed")

    @handles(NamespaceCommand)
    async def _namespace(self, cmd: NamespaceCommand) -> None:
        self._emit(NamespaceData((NamespaceDesc("", "/"),), None, None))
        self._ok(cmd.tag, "NAMESPACE completed")

    @handles(ListCommand)
    async def _list(self, cmd: ListCommand) -> None:
        assert self.user is not None
        sel = set(cmd.selection)
        ret = set(cmd.return_opts)
        if cmd.is_extended and not self._ext("LIST-EXTENDED"):
            # LIST-STATUS and LIST-CHANGEDSINCE use the extended syntax without LIST-EXTENDED (I.2)
            only_status = not sel and ret <= {"STATUS"} and cmd.changedsince is None
            if not (only_status and self._ext("LIST-STATUS")) and not (
                cmd.changedsince is not None and self._ext("LIST-CHANGEDSINCE")
            ):
                raise _Bad("LIST-EXTENDED is not enabled")
        if cmd.return_status is not None:
            if not self._ext("LIST-STATUS"):
                raise _Bad("LIST-STATUS is not enabled")
            self._check_status_items(cmd.return_status)
        if "RECURSIVEMATCH" in sel and not sel - {"RECURSIVEMATCH", "REMOTE"}:
            raise _Bad("RECURSIVEMATCH needs another selection option (RFC 5258 3.1)")
        unknown = sel - {"SUBSCRIBED", "RECURSIVEMATCH", "REMOTE"}
        if unknown:
            raise _Bad(f"unknown selection option {sorted(unknown)[0]}")
        unknown = ret - {"SUBSCRIBED", "CHILDREN"}  # STATUS is parsed into return_status
        if unknown:
            raise _Bad(f"unknown return option {sorted(unknown)[0]}")  # RFC 5258 3
        with_status = cmd.return_status is not None
        if cmd.changedsince is not None:
            if not self._ext("LIST-CHANGEDSINCE"):
                raise _Bad("LIST-CHANGEDSINCE is not enabled")
            self.condstore = True
            listings = await self._db(
                self.store.list_changed_since,
                self.user,
                cmd.changedsince,
                cmd.reference,
                cmd.patterns,
                subscribed_only="SUBSCRIBED" in sel,
                include_gone=self.settings.extensions.changedsince_deletions_and_renames,
                qresync=self._ext("QRESYNC"),
                with_status=with_status,
            )
            for r in list_responses(cmd, listings):
                await self._send(r)
            await self._after_command(allow_expunge=True)
            self._ok(cmd.tag, "LIST completed")
            return
        if all(p == "" for p in cmd.patterns) and not sel:
            self._emit(ListData(("\\Noselect",), "/", ""))
            self._ok(cmd.tag, "LIST completed")
            return
        listings = await self._db(
            self.store.list_mailboxes,
            self.user,
            cmd.reference,
            cmd.patterns,
            subscribed_only="SUBSCRIBED" in sel,
            with_status=with_status,
        )
        extra: list[Any] = []
        if "RECURSIVEMATCH" in sel:
            every = await self._db(self.store.list_mailboxes, self.user, cmd.reference, cmd.patterns)
            listed = {m.name for m in listings}
            pats = PatternSet(cmd.reference, cmd.patterns)

            def hidden_subscribed_child(parent: str) -> bool:
                # As Dovecot: CHILDINFO for a parent only when a subscribed descendant is not
                # itself matched by the patterns (else that descendant is listed in its own right)
                prefix = parent + "/"
                return any(s.startswith(prefix) and not pats.matches(s) for s in self.subscribed)

            extra = [
                m
                for m in every
                if m.has_subscribed_children and m.name not in listed and hidden_subscribed_child(m.name)
            ]
            # a subscribed child under a name that is no mailbox at all: \NonExistent + CHILDINFO
            known = listed | {m.name for m in every}
            ghosts = {
                parent
                for name in self.subscribed
                for parent in _ancestors(name)
                if parent not in known and pats.matches(parent) and hidden_subscribed_child(parent)
            }
            extra += [
                MailboxListing(g, None, None, True, True, False, nonexistent=True) for g in sorted(ghosts)
            ]
        for r in list_responses(cmd, listings, recursive_extra=extra):
            await self._send(r)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "LIST completed")

    @handles(LsubCommand)
    async def _lsub(self, cmd: LsubCommand) -> None:
        if cmd.pattern == "":
            self._emit(ListData(("\\Noselect",), "/", "", lsub=True))
        else:
            listings = await self._db(
                self.store.list_mailboxes, self.user, cmd.reference, [cmd.pattern], subscribed_only=True
            )
            rows = {m.name: ("\\Noselect",) if m.nonexistent else () for m in listings}
            if "%" in cmd.pattern:
                # RFC 3501 6.3.9: a "%" that stops above a subscribed child names the parent, \Noselect
                pats = PatternSet(cmd.reference, [cmd.pattern])
                for name in self.subscribed:
                    parts = name.split("/")
                    for i in range(1, len(parts)):
                        parent = "/".join(parts[:i])
                        if parent not in rows and parent not in self.subscribed and pats.matches(parent):
                            rows[parent] = ("\\Noselect",)
            for name in sorted(rows, key=lambda n: (n != "INBOX", n)):
                await self._send(ListData(rows[name], "/", name, lsub=True))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "LSUB completed")

    def _check_status_items(self, items: Sequence[str]) -> None:
        for it in items:
            if it not in STATUS_ITEMS:
                raise _Bad(f"unknown STATUS item {it}")
            if it == "HIGHESTMODSEQ":
                if not self._ext("CONDSTORE"):
                    raise _Bad("HIGHESTMODSEQ needs CONDSTORE")
                self.condstore = True
            if it == "MAILBOXID" and not self._ext("OBJECTID"):
                raise _Bad("MAILBOXID needs OBJECTID")

    @handles(StatusCommand)
    async def _status(self, cmd: StatusCommand) -> None:
        self._check_status_items(cmd.items)
        st = await self._db(self.store.status, self.user, cmd.mailbox)
        self._emit(StatusData(st.name if cmd.mailbox != "INBOX" else "INBOX", status_items(st, cmd.items)))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "STATUS completed")

    @handles(AppendCommand)
    async def _append(self, cmd: AppendCommand) -> None:
        flags = [f for f in cmd.flags if f.lower() != "\\recent"]
        db = self._db_short if len(cmd.message) <= _SHORT_APPEND_BYTES else self._db
        res = await db(
            self.store.append, self.user, cmd.mailbox, cmd.message, flags, cmd.date_time, origin=self
        )
        await self._after_command(allow_expunge=True)
        code = None
        if self._ext("UIDPLUS"):
            code = ResponseCode("APPENDUID", AppendUid(res.uidvalidity, SequenceSet.single(res.uid)))
        self._ok(cmd.tag, "APPEND completed", code)

    @handles(IdleCommand)
    async def _idle(self, cmd: IdleCommand) -> None:
        self._idle_tag = cmd.tag
        self.conn.enter_idle()
        self._emit(ContinuationRequest("idling"))

    @handles(NotifyCommand)
    async def _notify(self, cmd: NotifyCommand) -> None:
        if cmd.groups is None:
            self.notify = None
            self._pending_status.clear()
            self._pending_lists.clear()
            self._ok(cmd.tag, "NOTIFY completed")
            return
        try:
            spec = NotifySpec(cmd)
        except NotifyError as e:
            if e.bad:
                self._tagged(cmd.tag, "BAD", str(e), ResponseCode(e.code))
            else:
                self._tagged(cmd.tag, "NO", str(e), ResponseCode(e.code))
            return
        for att in spec.selected_fetch_atts() or ():
            # checked now: a bad item must be a BAD for NOTIFY, not a failure at the first push
            if isinstance(att, str) and att not in _FETCH_SIMPLE | _FETCH_DATA | set(_MACROS):
                raise _Bad(f"unknown FETCH item {att} in MessageNew")
            if att == "MODSEQ" and not self._ext("CONDSTORE"):
                raise _Bad("MODSEQ needs CONDSTORE")
        self.notify = spec
        if spec.status:
            listings = await self._db(self.store.list_mailboxes, self.user, "", ["*"], with_status=True)
            wanted = spec.status_mailboxes([m.name for m in listings], self.subscribed.__contains__)
            for m in listings:
                events = wanted.get(m.name)
                if events and m.status is not None and (self.sel is None or m.id != self.sel.id):
                    await self._send(
                        StatusData(m.name, status_items(m.status, _initial_status_items(events)))
                    )
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "NOTIFY completed")

    @handles(CompressCommand)
    async def _compress(self, cmd: CompressCommand) -> None:
        if cmd.mechanism.upper() != "DEFLATE":
            raise _No(f"unknown mechanism {cmd.mechanism}", "CANNOT")
        if self.conn.compressed:
            raise _No("compression is already active", "COMPRESSIONACTIVE")
        self._ok(cmd.tag, "DEFLATE active")
        await self._flush_out()
        self.conn.start_compression()


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _initial_status_items(events: frozenset[str]) -> list[str]:
    """The STATUS items NOTIFY SET STATUS sends for a mailbox, chosen by its events as Dovecot
    does: MessageNew -> MESSAGES UIDNEXT UIDVALIDITY UNSEEN, MessageExpunge -> MESSAGES,
    FlagChange -> UIDVALIDITY HIGHESTMODSEQ (the modseq a client compares to see flag changes)."""
    items: list[str] = []
    if "MessageNew" in events:
        items += ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
    elif "MessageExpunge" in events:
        items.append("MESSAGES")
    if "FlagChange" in events:
        items += [i for i in ("UIDVALIDITY", "HIGHESTMODSEQ") if i not in items]
    return items
