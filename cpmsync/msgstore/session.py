"""One IMAP connection: the codec's CommandParser, the state machine, the store, and push.

Three tasks per connection, owned by one TaskGroup: a reader that moves socket bytes into the
inbox, a pump that moves this user's committed changes (ChangeHub) into the session, and the
session loop itself, which runs one command at a time. Responses are collected and written in
large batches (one write and drain per ~64 KiB), never one drain per line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from cpmsync.imap import (
    NEED_DATA,
    AppendCommand,
    AppendUid,
    AuthenticateCommand,
    CapabilityCommand,
    CapabilityData,
    CheckCommand,
    CloseCommand,
    Command,
    CompressCommand,
    ContinuationNeeded,
    ContinuationRequest,
    CopyCommand,
    CopyUid,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    EnabledData,
    ESearchData,
    ExistsData,
    ExpungeCommand,
    ExpungeData,
    FetchAtt,
    FetchBody,
    FetchCommand,
    FetchData,
    FlagsData,
    IdCommand,
    IdData,
    IdleCommand,
    ImapLimitError,
    ImapProtocolError,
    ListCommand,
    ListData,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NamespaceData,
    NamespaceDesc,
    NoopCommand,
    NotifyCommand,
    RawLine,
    RecentData,
    RenameCommand,
    Response,
    ResponseCode,
    SearchCommand,
    SearchData,
    SelectCommand,
    SequenceSet,
    StartTlsCommand,
    StatusCommand,
    StatusData,
    StatusResponse,
    StoreCommand,
    SubscribeCommand,
    UnknownCommandError,
    UnselectCommand,
    UnsubscribeCommand,
    VanishedData,
    serialize_response,
)
from cpmsync.logs import kv
from cpmsync.msgstore.compress import DeflateCodec, IdentityCodec, StreamCodec
from cpmsync.msgstore.errors import NoSuchMailbox, StoreError
from cpmsync.msgstore.fetch_render import body_section, bodystructure, envelope, parse_mime
from cpmsync.msgstore.hub import EventKind, StoreEvent, Subscription
from cpmsync.msgstore.listing import STATUS_ITEMS, list_responses, status_items
from cpmsync.msgstore.notify import NotifyError, NotifySpec, event_name
from cpmsync.msgstore.records import FlagMode, MessageRecord, SearchFilter, UidSet
from cpmsync.msgstore.search_eval import (
    SearchContext,
    evaluate_search,
    uses_modseq,
    view_slice_by_seq,
    view_slice_by_uid,
)
from cpmsync.msgstore.session_state import ConnState, SessionState, StateError, SubState

if TYPE_CHECKING:
    from cpmsync.msgstore.server import ServerContext

__all__ = ["Session"]

log = logging.getLogger("cpmsync.msgstore.session")

_T = TypeVar("_T")
_WRITE_BATCH_BYTES = 64 * 1024
_FETCH_DATA_BATCH = 256  # messages whose bytes are read from the store in one call
_SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_FETCH_SIMPLE = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"}
_FETCH_DATA = {"ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822", "RFC822.HEADER", "RFC822.TEXT"}
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_session_ids = itertools.count(1)


class _Bad(Exception):
    """Answer the command with BAD."""


class _No(Exception):
    """Answer the command with NO [code]."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


class _Close(Exception):
    """End the connection after what has been written."""


@dataclass(slots=True)
class _Selected:
    """The session's view of its selected mailbox; sequence number = index in `uids` + 1."""

    id: int
    name: str
    readonly: bool
    uids: list[int]
    recent: set[int]
    pending_new: set[int] = field(default_factory=set)
    pending_expunge: set[int] = field(default_factory=set)
    pending_flags: set[int] = field(default_factory=set)
    resync: bool = False

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def remove(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            del self.uids[i]
            self.recent.discard(uid)
            return i + 1
        return None


_DATA, _EOF, _WAKE, _SHUTDOWN = "data", "eof", "wake", "shutdown"


class Session:
    """One connection's protocol state; `run()` returns when the connection is over."""

    def __init__(
        self,
        ctx: ServerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        from cpmsync.imap import CommandParser

        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        self.reader = reader
        self.writer = writer
        self.tls = tls
        peer = writer.get_extra_info("peername")
        self.peer_host: str = peer[0] if isinstance(peer, tuple) else "unix"
        self.id = next(_session_ids)
        lim = self.settings.limits
        self.parser = CommandParser(
            max_line_bytes=lim.max_line_bytes,
            max_literal_bytes=lim.max_literal_bytes,
            max_message_bytes=max(lim.max_literal_bytes, lim.max_line_bytes) * 2,
        )
        self.state = SessionState()
        self.user: str | None = None
        self.sel: _Selected | None = None
        self.condstore = False
        self.qresync = False
        self.notify: NotifySpec | None = None
        self.subscribed: set[str] = set()
        self.codec: StreamCodec = IdentityCodec()
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._read_paused = asyncio.Event()
        self._read_paused.set()
        self._sub: Subscription | None = None
        self._events: deque[StoreEvent] = deque()
        self._pending_status: dict[int, str] = {}
        self._pending_lists: list[Response] = []
        self._out: list[bytes] = []
        self._out_size = 0
        self._shutdown = False
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_activity = time.monotonic()
        self._tokens = max(1.0, lim.max_commands_per_s)
        self._token_time = time.monotonic()
        self._sasl_tag: str | None = None
        self._idle_tag: str | None = None
        self._handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            CapabilityCommand: self._capability,
            NoopCommand: self._noop,
            CheckCommand: self._noop,
            LogoutCommand: self._logout,
            IdCommand: self._id,
            StartTlsCommand: self._starttls,
            LoginCommand: self._login,
            AuthenticateCommand: self._authenticate,
            EnableCommand: self._enable,
            SelectCommand: self._select,
            CreateCommand: self._create,
            DeleteCommand: self._delete,
            RenameCommand: self._rename,
            SubscribeCommand: self._subscribe,
            UnsubscribeCommand: self._unsubscribe,
            NamespaceCommand: self._namespace,
            ListCommand: self._list,
            LsubCommand: self._lsub,
            StatusCommand: self._status,
            AppendCommand: self._append,
            CloseCommand: self._close,
            UnselectCommand: self._unselect,
            ExpungeCommand: self._expunge,
            SearchCommand: self._search,
            FetchCommand: self._fetch,
            StoreCommand: self._store,
            CopyCommand: self._copy,
            MoveCommand: self._move,
            IdleCommand: self._idle,
            NotifyCommand: self._notify,
            CompressCommand: self._compress,
        }

    # ================================================================ plumbing

    def request_shutdown(self) -> None:
        """Server stopping: finish the current command, say BYE, close."""
        self._shutdown = True
        self._inbox.put_nowait((_SHUTDOWN, b""))

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._tasks.append(tg.create_task(self._read_loop()))
                try:
                    await self._main()
                finally:
                    for t in self._tasks:
                        t.cancel()
        except* (ConnectionError, ssl.SSLError, OSError, _CloseNow):
            pass
        finally:
            if self._sub is not None:
                self._sub.close()
            if self.user is not None:
                self.ctx.release_user(self.user)
            await self._close_transport()

    async def _close_transport(self) -> None:
        try:
            self.writer.close()
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (Exception, asyncio.CancelledError):
            pass

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._read_paused.wait()
                data = await self.reader.read(65536)
                if not data:
                    break
                self._inbox.put_nowait((_DATA, data))
                if self._inbox.qsize() > 64:  # the session is behind: stop reading (backpressure)
                    self._read_paused.clear()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        self._inbox.put_nowait((_EOF, b""))

    async def _pump(self, sub: Subscription) -> None:
        async for ev in sub:
            self._events.append(ev)
            self._inbox.put_nowait((_WAKE, b""))

    def _emit(self, resp: Response) -> None:
        data = serialize_response(resp)
        self._out.append(data)
        self._out_size += len(data)

    async def _send(self, resp: Response) -> None:
        self._emit(resp)
        if self._out_size >= _WRITE_BATCH_BYTES:
            await self._flush_out()

    async def _flush_out(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        self.writer.write(self.codec.encode(data))
        await self.writer.drain()

    def _tagged(self, tag: str, status: str, text: str, code: ResponseCode | None = None) -> None:
        self._emit(StatusResponse(tag, status, code, text))

    async def _db(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one store call in a worker thread (the store is synchronous and thread-safe)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _next_item(self) -> tuple[str, bytes]:
        """The next inbox item, or raise TimeoutError (idle timeout) / return a keep-alive tick."""
        server = self.settings.server
        deadline = self._last_activity + server.idle_timeout_s
        if self.state.sub is SubState.IDLE and server.idle_keepalive_s > 0:
            tick = time.monotonic() + server.idle_keepalive_s
            if tick < deadline:
                try:
                    async with asyncio.timeout_at(_loop_time(tick)):
                        return await self._inbox.get()
                except TimeoutError:
                    return ("tick", b"")
        async with asyncio.timeout_at(_loop_time(deadline)):
            return await self._inbox.get()

    async def _main(self) -> None:
        await self._greeting()
        while True:
            if self._shutdown:
                await self._bye("Server shutting down")
                return
            try:
                ev = self.parser.next_event()
            except ImapProtocolError as e:
                await self._protocol_error(e)
                continue
            if ev is NEED_DATA:
                if self.state.state is ConnState.LOGOUT:
                    return
                if self.codec.pending:  # the rest of a large inflated chunk, one bounded step at a time
                    try:
                        self.parser.feed(self.codec.decode_more())
                    except Exception:
                        return
                    continue
                await self._flush_push()
                await self._flush_out()
                try:
                    kind, data = await self._next_item()
                except TimeoutError:
                    await self._bye("Autologout; idle for too long")
                    return
                if kind == _DATA:
                    if not self._read_paused.is_set() and self._inbox.qsize() < 16:
                        self._read_paused.set()
                    self._last_activity = time.monotonic()
                    try:
                        self.parser.feed(self.codec.decode(data))
                    except Exception:  # corrupt deflate stream: nothing sane can follow
                        return
                elif kind == _EOF:
                    return
                elif kind == "tick":
                    self._emit(StatusResponse(None, "OK", None, "Still here"))
                continue
            if isinstance(ev, ContinuationNeeded):
                self._emit(ContinuationRequest("Ready for literal data"))
                await self._flush_out()
                continue
            try:
                if isinstance(ev, RawLine):
                    await self._raw_line(ev.data)
                    continue
                await self._throttle()
                await self._command(ev)  # type: ignore[arg-type]
            except _Close:
                await self._flush_out()
                return
            if self.state.state is ConnState.LOGOUT:
                await self._flush_out()
                return

    async def _greeting(self) -> None:
        host = self.settings.server.hostname
        if self.ctx.address_over_limit(self.peer_host):
            self._emit(StatusResponse(None, "BYE", None, "Too many connections from your address"))
            await self._flush_out()
            raise _CloseNow
        caps = ResponseCode("CAPABILITY", tuple(self._capabilities()))
        self._emit(StatusResponse(None, "OK", caps, f"{host} ready"))
        await self._flush_out()

    async def _bye(self, text: str) -> None:
        self._emit(StatusResponse(None, "BYE", None, text))
        await self._flush_out()
        self.state.logout()

    async def _protocol_error(self, e: ImapProtocolError) -> None:
        tag = getattr(e, "tag", None)
        if self.state.sub is not SubState.NONE:
            self.state.leave_sub()
        if isinstance(e, ImapLimitError):
            code = ResponseCode("TOOBIG")
            text = e.message or "too big"
            if tag:
                self._tagged(tag, "BAD", text, code)
            else:
                self._emit(StatusResponse(None, "BAD", code, text))
            return
        if isinstance(e, UnknownCommandError) and tag:
            self._tagged(tag, "BAD", f"Unknown command {getattr(e, 'command', '')}".strip())
            return
        msg = e.message or "syntax error"
        if tag:
            self._tagged(tag, "BAD", msg)
        else:
            self._emit(StatusResponse(None, "BAD", None, msg))

    async def _throttle(self) -> None:
        rate = self.settings.limits.max_commands_per_s
        if rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(max(1.0, rate), self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / rate)
            self._tokens = 1.0
            self._token_time = time.monotonic()
        self._tokens -= 1

    async def _command(self, cmd: Command) -> None:
        tag = cmd.tag
        try:
            self.state.check(cmd)
            await self._handlers[type(cmd)](cmd)
        except StateError as e:
            self._tagged(tag, "BAD", str(e))
        except _Bad as e:
            self._tagged(tag, "BAD", str(e))
        except _No as e:
            self._tagged(tag, "NO", str(e), ResponseCode(e.code) if e.code else None)
        except NoSuchMailbox as e:
            code = "TRYCREATE" if isinstance(cmd, AppendCommand | CopyCommand | MoveCommand) else e.code
            self._tagged(tag, "NO", str(e) or "no such mailbox", ResponseCode(code))
        except StoreError as e:
            self._tagged(tag, "NO", str(e) or type(e).__name__, ResponseCode(e.code))
        except (_Close, _CloseNow, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("command failed", extra=kv(session=self.id, command=type(cmd).__name__))
            self._tagged(tag, "NO", "internal server error", ResponseCode("SERVERBUG"))

    def _capabilities(self) -> list[str]:
        caps = list(self.settings.extensions.capabilities())
        if not self.state.authenticated_:
            if self._login_disabled():
                caps.append("LOGINDISABLED")
            else:
                caps.append("AUTH=PLAIN")
            if self._starttls_available():
                caps.append("STARTTLS")
        return caps

    def _login_disabled(self) -> bool:
        if self.tls or self.settings.server.allow_plaintext_login_non_loopback:
            return False
        return not _is_loopback(self.peer_host)

    def _starttls_available(self) -> bool:
        return not self.tls and self.settings.server.starttls and self.ctx.ssl_context is not None

    def _ext(self, cap: str) -> bool:
        return self.settings.extensions.enabled(cap)

    def _ok(self, tag: str, text: str, code: ResponseCode | None = None) -> None:
        self._tagged(tag, "OK", text, code)

    # ================================================================ push

    def _drain_events(self) -> None:
        """Apply every change committed so far (own echo ignored where we answered ourselves)."""
        while True:
            if self._events:
                ev = self._events.popleft()
            elif self._sub is not None and (got := self._sub.get_nowait()) is not None:
                ev = got
            else:
                return
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
            return
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

    def _push_now(self) -> tuple[bool, bool]:
        """(selected-mailbox updates may go out now, expunges may go out now) while waiting."""
        if self.state.sub is SubState.IDLE:
            return True, True
        spec = self.notify
        if spec is not None and spec.has_selected:
            return True, not spec.selected_delayed
        return False, False

    async def _flush_push(self) -> None:
        """Between commands: deliver what IDLE/NOTIFY ask to be delivered at once."""
        if self._sub is None:
            return
        self._drain_events()
        sel_now, expunge_now = self._push_now()
        if sel_now:
            await self._flush_selected(allow_expunge=expunge_now)
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

    async def _flush_selected(self, *, allow_expunge: bool) -> None:
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
        if sel.pending_new:
            last = sel.uids[-1] if sel.uids else 0
            new = sorted(u for u in sel.pending_new if u > last)
            sel.pending_new.clear()
            if new:
                sel.uids.extend(new)
                self._emit(ExistsData(len(sel.uids)))
                self._emit(RecentData(len(sel.recent)))
                atts = self.notify.selected_fetch_atts() if self.notify else None
                if atts:
                    seqs = SequenceSet.from_ints(sel.seq_of(u) or 0 for u in new)
                    wanted = tuple(a for a in atts if isinstance(a, str | FetchBody))
                    await self._fetch_items(seqs, wanted, False)
        if sel.pending_flags:
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

    async def _after_command(self, *, allow_expunge: bool) -> None:
        """Before a tagged reply: untagged updates the client must learn about (RFC 3501 7)."""
        if self._sub is None:
            return
        self._drain_events()
        await self._flush_selected(allow_expunge=allow_expunge)
        if self.notify is not None:
            await self._flush_other()

    def _flags_of(self, r: MessageRecord) -> tuple[str, ...]:
        flags = sorted(r.flags)
        if self.sel is not None and r.uid in self.sel.recent:
            flags.append("\\Recent")
        return tuple(flags)

    # ================================================================ any state

    async def _capability(self, cmd: CapabilityCommand) -> None:
        self._emit(CapabilityData(tuple(self._capabilities())))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "CAPABILITY completed")

    async def _noop(self, cmd: NoopCommand | CheckCommand) -> None:
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, f"{'NOOP' if isinstance(cmd, NoopCommand) else 'CHECK'} completed")

    async def _logout(self, cmd: LogoutCommand) -> None:
        self._emit(StatusResponse(None, "BYE", None, "Logging out"))
        self._ok(cmd.tag, "LOGOUT completed")
        self.state.logout()

    async def _id(self, cmd: IdCommand) -> None:
        if not self._ext("ID"):
            raise _Bad("ID is not enabled")
        self._emit(IdData((("name", "cpmsync-msgstore"), ("vendor", "cpmsync"), ("version", "0.1.0"))))
        self._ok(cmd.tag, "ID completed")

    # ================================================================ not authenticated

    async def _starttls(self, cmd: StartTlsCommand) -> None:
        if not self._starttls_available():
            raise _Bad("STARTTLS is not available")
        self._ok(cmd.tag, "Begin TLS negotiation now")
        await self._flush_out()
        # RFC 3501 6.2.1 / CVE-2011-0411: plaintext pipelined after STARTTLS must not run as if it had
        # come over TLS, so drop whatever was read before the handshake.
        self.parser.take_buffered()
        kept = []
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if item[0] != _DATA:
                kept.append(item)
        for item in kept:
            self._inbox.put_nowait(item)
        assert self.ctx.ssl_context is not None
        try:
            async with asyncio.timeout(30):
                await self.writer.start_tls(self.ctx.ssl_context)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError):
            raise _Close from None
        self.tls = True

    async def _login(self, cmd: LoginCommand) -> None:
        if self._login_disabled():
            raise _No("Plaintext login is disabled: use STARTTLS or the TLS port", "PRIVACYREQUIRED")
        await self._authenticate_user(cmd.tag, cmd.username, cmd.password)

    async def _authenticate(self, cmd: AuthenticateCommand) -> None:
        if cmd.mechanism.upper() != "PLAIN":
            raise _No(f"mechanism {cmd.mechanism} is not supported", "CANNOT")
        if self._login_disabled():
            raise _No("Plaintext authentication is disabled: use STARTTLS", "PRIVACYREQUIRED")
        if cmd.initial_response is not None:
            if not self._ext("SASL-IR"):
                raise _Bad("SASL-IR is not enabled")
            await self._sasl_plain(cmd.tag, cmd.initial_response)
            return
        self._sasl_tag = cmd.tag
        self.state.enter_sasl()
        self.parser.expect_raw_line()
        self._emit(ContinuationRequest(""))

    async def _raw_line(self, data: bytes) -> None:
        if self.state.sub is SubState.IDLE:
            tag = self._idle_tag or "*"
            self.state.leave_sub()
            self._idle_tag = None
            if data.strip().upper() == b"DONE":
                await self._after_command(allow_expunge=True)
                self._ok(tag, "IDLE terminated")
            else:
                self._tagged(tag, "BAD", "expected DONE")
            return
        if self.state.sub is SubState.SASL:
            tag = self._sasl_tag or "*"
            self.state.leave_sub()
            self._sasl_tag = None
            if data.strip() == b"*":
                self._tagged(tag, "BAD", "AUTHENTICATE cancelled")
                return
            try:
                raw = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                self._tagged(tag, "BAD", "invalid base64")
                return
            try:
                await self._sasl_plain(tag, raw)
            except _No as e:
                self._tagged(tag, "NO", str(e), ResponseCode(e.code) if e.code else None)
            return
        self._emit(StatusResponse(None, "BAD", None, "unexpected line"))

    async def _sasl_plain(self, tag: str, raw: bytes) -> None:
        parts = raw.split(b"\0")
        if len(parts) != 3:
            self._tagged(tag, "BAD", "malformed PLAIN response")
            return
        authzid, user, password = (p.decode("utf-8", "surrogateescape") for p in parts)
        if authzid and authzid != user:
            await self._auth_failed()
            raise _No("authorization identity differs", "AUTHORIZATIONFAILED")
        await self._authenticate_user(tag, user, password)

    async def _auth_failed(self) -> None:
        await asyncio.sleep(self.settings.limits.auth_failure_delay_ms / 1000)

    async def _authenticate_user(self, tag: str, user: str, password: str) -> None:
        ok = await self._db(self.store.verify_password, user, password)
        if not ok:
            log.info("authentication failed", extra=kv(session=self.id, peer=self.peer_host))
            await self._auth_failed()
            raise _No("Authentication failed", "AUTHENTICATIONFAILED")
        if not self.ctx.claim_user(user):
            raise _No("Too many connections for this user", "LIMIT")
        self.user = user
        self.state.authenticated()
        assert self._tg is not None
        self._sub = self.store.hub.subscribe(user)
        self._tasks.append(self._tg.create_task(self._pump(self._sub)))
        try:
            subs = await self._db(self.store.list_mailboxes, user, "", ["*"], subscribed_only=True)
            self.subscribed = {m.name for m in subs}
        except StoreError:
            self.subscribed = set()
        log.info("login", extra=kv(session=self.id, user=user, peer=self.peer_host))
        self._ok(tag, "Logged in", ResponseCode("CAPABILITY", tuple(self._capabilities())))

    # ================================================================ authenticated

    async def _enable(self, cmd: EnableCommand) -> None:
        if not self._ext("ENABLE"):
            raise _Bad("ENABLE is not enabled")
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
        info = await self._db(self.store.select, self.user, cmd.mailbox, readonly=cmd.readonly)
        st = info.status
        flags = (*_SYSTEM_FLAGS, *info.keywords)
        self._emit(FlagsData(flags))
        perm: tuple[str, ...] = () if cmd.readonly else (*flags, "\\*")
        self._emit(StatusResponse(None, "OK", ResponseCode("PERMANENTFLAGS", perm), "Limited"))
        self._emit(ExistsData(len(info.uids)))
        self._emit(RecentData(len(info.recent_uids)))
        if st.unseen:
            first = await self._db(self._first_unseen, st.id, info.uids)
            if first:
                self._emit(StatusResponse(None, "OK", ResponseCode("UNSEEN", first), "First unseen"))
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
            id=st.id, name=st.name, readonly=cmd.readonly, uids=list(info.uids), recent=set(info.recent_uids)
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

    def _first_unseen(self, mbid: int, uids: list[int]) -> int | None:
        recs = self.store.fetch(self.user or "", mbid, None)
        unseen = {r.uid for r in recs if "\\Seen" not in r.flags}
        for i, u in enumerate(uids):
            if u in unseen:
                return i + 1
        return None

    async def _create(self, cmd: CreateCommand) -> None:
        await self._db(self.store.create_mailbox, self.user, cmd.mailbox, origin=self)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "CREATE completed")

    async def _delete(self, cmd: DeleteCommand) -> None:
        await self._db(self.store.delete_mailbox, self.user, cmd.mailbox, origin=self)
        if self.sel is not None and self.sel.name == cmd.mailbox:
            self.sel = None
            self.state.deselected()
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "DELETE completed")

    async def _rename(self, cmd: RenameCommand) -> None:
        await self._db(self.store.rename_mailbox, self.user, cmd.old, cmd.new, origin=self)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "RENAME completed")

    async def _subscribe(self, cmd: SubscribeCommand) -> None:
        await self._db(self.store.subscribe, self.user, cmd.mailbox, origin=self)
        self.subscribed.add(cmd.mailbox)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "SUBSCRIBE completed")

    async def _unsubscribe(self, cmd: UnsubscribeCommand) -> None:
        await self._db(self.store.unsubscribe, self.user, cmd.mailbox, origin=self)
        self.subscribed.discard(cmd.mailbox)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "UNSUBSCRIBE completed")

    async def _namespace(self, cmd: NamespaceCommand) -> None:
        if not self._ext("NAMESPACE"):
            raise _Bad("NAMESPACE is not enabled")
        self._emit(NamespaceData((NamespaceDesc("", "/"),), None, None))
        self._ok(cmd.tag, "NAMESPACE completed")

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
        if all(p == "" for p in cmd.patterns) and not cmd.is_extended:
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
            extra = [m for m in every if m.has_subscribed_children and m.name not in listed]
        for r in list_responses(cmd, listings, recursive_extra=extra):
            await self._send(r)
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "LIST completed")

    async def _lsub(self, cmd: LsubCommand) -> None:
        if cmd.pattern == "":
            self._emit(ListData(("\\Noselect",), "/", "", lsub=True))
        else:
            listings = await self._db(
                self.store.list_mailboxes, self.user, cmd.reference, [cmd.pattern], subscribed_only=True
            )
            for m in listings:
                attrs = ("\\Noselect",) if m.nonexistent else ()
                await self._send(ListData(attrs, "/", m.name, lsub=True))
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

    async def _status(self, cmd: StatusCommand) -> None:
        self._check_status_items(cmd.items)
        st = await self._db(self.store.status, self.user, cmd.mailbox)
        self._emit(StatusData(st.name if cmd.mailbox != "INBOX" else "INBOX", status_items(st, cmd.items)))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "STATUS completed")

    async def _append(self, cmd: AppendCommand) -> None:
        flags = [f for f in cmd.flags if f.lower() != "\\recent"]
        res = await self._db(
            self.store.append, self.user, cmd.mailbox, cmd.message, flags, cmd.date_time, origin=self
        )
        await self._after_command(allow_expunge=True)
        code = None
        if self._ext("UIDPLUS"):
            code = ResponseCode("APPENDUID", AppendUid(res.uidvalidity, SequenceSet.single(res.uid)))
        self._ok(cmd.tag, "APPEND completed", code)

    async def _idle(self, cmd: IdleCommand) -> None:
        if not self._ext("IDLE"):
            raise _Bad("IDLE is not enabled")
        self._idle_tag = cmd.tag
        self.state.enter_idle()
        self.parser.expect_raw_line()
        self._emit(ContinuationRequest("idling"))

    async def _notify(self, cmd: NotifyCommand) -> None:
        if not self._ext("NOTIFY"):
            raise _Bad("NOTIFY is not enabled")
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
        self.notify = spec
        if spec.status:
            listings = await self._db(self.store.list_mailboxes, self.user, "", ["*"], with_status=True)
            names = spec.status_mailboxes([m.name for m in listings], self.subscribed.__contains__)
            wanted = set(names)
            items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
            if self.condstore:
                items.append("HIGHESTMODSEQ")
            for m in listings:
                if m.name in wanted and m.status is not None and (self.sel is None or m.id != self.sel.id):
                    await self._send(StatusData(m.name, status_items(m.status, items)))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "NOTIFY completed")

    async def _compress(self, cmd: CompressCommand) -> None:
        if not self._ext("COMPRESS=DEFLATE"):
            raise _Bad("COMPRESS is not enabled")
        if cmd.mechanism.upper() != "DEFLATE":
            raise _No(f"unknown mechanism {cmd.mechanism}", "CANNOT")
        if self.codec.active:
            raise _No("compression is already active", "COMPRESSIONACTIVE")
        self._ok(cmd.tag, "DEFLATE active")
        await self._flush_out()
        leftover = self.parser.take_buffered()
        self.codec = DeflateCodec()
        if leftover:
            self.parser.feed(self.codec.decode(leftover))

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

    async def _close(self, cmd: CloseCommand) -> None:
        sel = self.sel
        assert sel is not None
        if not sel.readonly and sel.uids:
            await self._db(self.store.expunge, self.user, sel.id, UidSet.from_uids(sel.uids), origin=self)
        self.sel = None
        self.state.deselected()
        self._ok(cmd.tag, "CLOSE completed")

    async def _unselect(self, cmd: UnselectCommand) -> None:
        if not self._ext("UNSELECT"):
            raise _Bad("UNSELECT is not enabled")
        self.sel = None
        self.state.deselected()
        self._ok(cmd.tag, "UNSELECT completed")

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

    async def _search(self, cmd: SearchCommand) -> None:
        sel = self.sel
        assert sel is not None and self.user is not None
        if cmd.charset is not None and cmd.charset.upper() not in ("US-ASCII", "UTF-8"):
            raise _No(f"charset {cmd.charset} is not supported", "BADCHARSET")
        user, mbid = self.user, sel.id
        view = list(sel.uids)
        recent = set(sel.recent)

        def run() -> tuple[list[int], dict[int, MessageRecord]]:
            recs = {r.uid: r for r in self.store.fetch(user, mbid, UidSet.from_uids(view) if view else None)}
            recs = {u: r for u, r in recs.items() if u in set(view)} if view else {}

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
            self.condstore = True
        highest = max((recs[u].modseq for u in found if u in recs), default=0)
        ids = found if cmd.uid else [sel.seq_of(u) or 0 for u in found]
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

    async def _fetch(self, cmd: FetchCommand) -> None:
        sel = self.sel
        assert sel is not None
        if cmd.changedsince is not None:
            if not self._ext("CONDSTORE"):
                raise _Bad("CHANGEDSINCE needs CONDSTORE")
            self.condstore = True
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
        if "MODSEQ" in items:
            if not self._ext("CONDSTORE"):
                raise _Bad("MODSEQ needs CONDSTORE")
            self.condstore = True
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
        user, mbid = self.user, sel.id
        for start in range(0, len(uids), _FETCH_DATA_BATCH if need_data else len(uids)):
            chunk = uids[start : start + (_FETCH_DATA_BATCH if need_data else len(uids))]
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

    async def _store(self, cmd: StoreCommand) -> None:
        sel = self.sel
        assert sel is not None
        if sel.readonly:
            raise _No("mailbox is read-only", "READ-ONLY")
        if cmd.unchangedsince is not None:
            if not self._ext("CONDSTORE"):
                raise _Bad("UNCHANGEDSINCE needs CONDSTORE")
            self.condstore = True
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

    async def _move(self, cmd: MoveCommand) -> None:
        sel = self.sel
        assert sel is not None
        if not self._ext("MOVE"):
            raise _Bad("MOVE is not enabled")
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


class _CloseNow(Exception):
    """Close the connection immediately (greeting refused)."""


def _uidset(s: SequenceSet, view: Sequence[int]) -> UidSet:
    """A UID set with '*' resolved to the largest UID in the view (RFC 3501 6.4.8)."""
    largest = view[-1] if view else 0
    ranges = []
    for lo, hi in s.ranges:
        lo = largest if lo == 0 else lo
        hi = largest if hi == 0 else hi
        if lo == 0 and hi == 0:
            continue
        ranges.append((max(1, min(lo, hi)), max(lo, hi)))
    return UidSet.from_ranges(ranges)


def _ordered_set(uids: Sequence[int]) -> SequenceSet:
    """COPYUID destination: order must match the source set, so ranges only where consecutive."""
    ranges: list[tuple[int, int]] = []
    for u in uids:
        if ranges and u == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], u)
        else:
            ranges.append((u, u))
    return SequenceSet(tuple(ranges))


def _aware(d: datetime) -> datetime:
    from datetime import UTC

    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _loop_time(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "unix")
