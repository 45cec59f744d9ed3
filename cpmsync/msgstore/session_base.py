"""Plumbing of one IMAP connection: reading, batching writes, store calls, the command loop.

`SessionBase` owns the transport and the ImapConnection (codec, state machine, COMPRESS); the concept
modules add the commands (session_auth, session_mailbox, session_message) and push
(session_push); `session.Session` puts them together.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from cpmsync.imap import (
    NEED_DATA,
    AppendCommand,
    Command,
    ContinuationNeeded,
    ContinuationRequest,
    CopyCommand,
    FetchData,
    FlagsData,
    ImapLimitError,
    ImapProtocolError,
    InvalidMailboxNameError,
    MoveCommand,
    RawLine,
    Response,
    ResponseCode,
    SequenceSet,
    StatusResponse,
    UnknownCommandError,
)
from cpmsync.imap.command_specs import spec_of
from cpmsync.imap.connection import ImapConnection, Role, StreamCorrupt
from cpmsync.imap.state import ConnState, StateError, SubState
from cpmsync.logs import kv
from cpmsync.msgstore.errors import NoSuchMailbox, StoreBusy, StoreError
from cpmsync.msgstore.hub import Subscription
from cpmsync.msgstore.notify import NotifySpec
from cpmsync.msgstore.records import UidSet

if TYPE_CHECKING:
    from cpmsync.msgstore.server import ServerContext

__all__ = ["SessionBase", "handles"]

log = logging.getLogger("cpmsync.msgstore.session")

_T = TypeVar("_T")
_Handler = Callable[[Any, Any], Awaitable[None]]
_H = TypeVar("_H", bound=_Handler)
_WRITE_BATCH_BYTES = 64 * 1024
# Read commands ahead of the one running until this many bytes wait unparsed, then stop reading
# the socket (the transport's pause_reading) until half of them are parsed: a client that pipelines
# without reading its replies fills its own buffers (and the kernel's), not ours; replies are
# written out every _WRITE_BATCH_BYTES and each write waits for the client. One read of the
# transport can bring up to 256 KiB on top.
_READ_AHEAD_BYTES = 64 * 1024
_FETCH_DATA_BATCH = 256  # messages whose bytes are read from the store in one call
_FETCH_DATA_BATCH_BYTES = 8 * 1024 * 1024  # ... and at most about this many bytes
# Reads that may run on the loop itself (`_db_read`), each under a millisecond: a SELECT of a
# mailbox of at most _SHORT_SELECT_MESSAGES messages (0.7 ms for 1,000), a FETCH of at most
# _SHORT_FETCH_MESSAGES UIDs (a record costs 5-8 us) and, with their bytes, _SHORT_READ_BYTES.
_SHORT_SELECT_MESSAGES = 1000
_SHORT_FETCH_MESSAGES = 100
_SHORT_READ_BYTES = 256 * 1024
_SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_FETCH_SIMPLE = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "EMAILID", "THREADID"}
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
    keywords: dict[str, str] = field(default_factory=dict)  # lower-case -> as announced in FLAGS

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


def handles(*commands: type[Command]) -> Callable[[_H], _H]:
    """Mark a session method as the handler of these commands (the server's dispatch table)."""

    def mark(fn: _H) -> _H:
        setattr(fn, "_imap_commands", commands)  # noqa: B010
        return fn

    return mark


class SessionProtocol(asyncio.StreamReaderProtocol):
    """The server's protocol for a connection: a StreamReaderProtocol (so StreamWriter, drain and
    STARTTLS work as ever) whose received bytes go straight to the session (`attach`) instead of
    through a StreamReader and a reader task, one task switch per chunk fewer. b"" is the end."""

    def __init__(self, client_connected_cb: Callable[[Any, Any], None], limit: int = 2**16) -> None:
        super().__init__(asyncio.StreamReader(limit=limit), client_connected_cb)
        self._feed: Callable[[bytes], None] | None = None
        self._early: list[bytes] = []  # received before the session attached

    def attach(self, feed: Callable[[bytes], None]) -> None:
        self._feed = feed
        early, self._early = self._early, []
        for data in early:
            feed(data)

    def _give(self, data: bytes) -> None:
        if self._feed is None:
            self._early.append(data)
        else:
            self._feed(data)

    def data_received(self, data: bytes) -> None:
        self._give(data)

    def eof_received(self) -> bool:
        self._give(b"")
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self._give(b"")
        super().connection_lost(exc)


class SessionBase:
    """One connection's protocol state and I/O; `run()` returns when the connection is over."""

    # Provided by the concern modules: session_auth (_raw_line: DONE and SASL lines),
    # session_message (_fetch_items), session_push (_flush_push).
    _raw_line: Callable[[bytes], Awaitable[None]]
    _fetch_items: Callable[..., Awaitable[None]]
    _flush_push: Callable[[], Awaitable[None]]

    # command class -> handler, from the @handles marks of this class and its bases
    handlers: ClassVar[dict[type, _Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, _Handler] = {}
        for klass in reversed(cls.__mro__):
            for fn in vars(klass).values():
                for command in getattr(fn, "_imap_commands", ()):
                    table[command] = fn
        cls.handlers = table

    def __init__(
        self,
        ctx: ServerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
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
        self.conn = ImapConnection(
            Role.SERVER,
            max_line_bytes=lim.max_line_bytes,
            max_literal_bytes=lim.max_literal_bytes,
            max_message_bytes=max(lim.max_literal_bytes, lim.max_line_bytes) * 2,
        )
        self.state = self.conn.state
        self.user: str | None = None
        self.sel: _Selected | None = None
        self.condstore = False
        self.qresync = False
        self.notify: NotifySpec | None = None
        self.subscribed: set[str] = set()
        # what the command loop has to handle, in order: bytes read, EOF, wake-ups, shutdown
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._inbox_waiter: asyncio.Future[None] | None = None
        self._inbox_bytes = 0  # bytes read from the socket, not yet handed to the parser
        self._reading_paused = False
        self._eof = False
        self.held_peak = 0  # most bytes this session held at once: read ahead + replies not yet taken
        self._sub: Subscription | None = None
        self._wake_queued = False
        self._pending_status: dict[int, str] = {}
        self._pending_lists: list[Response] = []
        self._out: list[bytes] = []
        self._out_size = 0
        self._shutdown = False
        self._last_activity = time.monotonic()
        self._tokens = max(1.0, lim.max_commands_per_s)
        self._token_time = time.monotonic()
        self._sasl_tag: str | None = None
        self._idle_tag: str | None = None

    # ================================================================ plumbing

    def abort(self) -> None:
        """Cut the connection now (shutdown grace period over)."""
        self.writer.transport.abort()

    def request_shutdown(self) -> None:
        """Server stopping: finish the current command, say BYE, close."""
        self._shutdown = True
        self._put((_SHUTDOWN, b""))

    async def run(self) -> None:
        protocol = self.writer.transport.get_protocol()
        if not isinstance(protocol, SessionProtocol):
            raise TypeError("a session needs a connection made by SessionProtocol")
        try:
            protocol.attach(self._received)
            await self._main()
        except (ConnectionError, ssl.SSLError, OSError, _CloseNow):
            pass
        finally:
            if self._sub is not None:
                self._sub.close()
            if self.user is not None:
                await self.ctx.release_user(self.user)
            await self._close_transport()

    async def _close_transport(self) -> None:
        try:
            self.writer.close()
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (Exception, asyncio.CancelledError):
            pass

    def _put(self, item: tuple[str, bytes]) -> None:
        self._inbox.append(item)
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _received(self, data: bytes) -> None:
        """From SessionProtocol, on the loop: bytes read from the client, or b"" at its end."""
        if not data:
            if not self._eof:
                self._eof = True
                self._put((_EOF, b""))
            return
        self._put((_DATA, data))
        self._inbox_bytes += len(data)
        self._note_held()
        if self._inbox_bytes >= _READ_AHEAD_BYTES and not self._reading_paused:
            self._reading_paused = True  # the session is behind: stop reading
            self._transport().pause_reading()

    def _took_input(self, data: bytes) -> None:
        """`data` left the inbox for the parser: read on once the read-ahead is half used."""
        self._inbox_bytes -= len(data)
        if self._reading_paused and self._inbox_bytes < _READ_AHEAD_BYTES // 2:
            self._resume_reading()

    def _resume_reading(self) -> None:
        self._reading_paused = False
        transport = self._transport()
        if not transport.is_closing():
            transport.resume_reading()

    def _transport(self) -> asyncio.Transport:
        """The connection's transport (a new one after STARTTLS), reading side included."""
        return cast(asyncio.Transport, self.writer.transport)

    def _drop_pending_input(self) -> None:
        """Forget the bytes read but not parsed (STARTTLS: plaintext sent before the handshake),
        keeping the inbox's other items (EOF, push wake-ups, shutdown)."""
        kept = [item for item in self._inbox if item[0] != _DATA]
        self._inbox.clear()
        self._inbox.extend(kept)
        self._inbox_bytes = 0
        if self._reading_paused:
            self._resume_reading()

    @property
    def held_bytes(self) -> int:
        """Bytes this session holds for its client: commands read ahead, replies not yet written
        to the socket, and written ones the socket has not taken (the transport's buffer)."""
        return self._inbox_bytes + self._out_size + self.writer.transport.get_write_buffer_size()

    def _note_held(self) -> None:
        held = self.held_bytes
        if held > self.held_peak:
            self.held_peak = held

    def _hear_changes(self, user: str) -> None:
        """Hear this user's committed changes: they queue in the subscription (bounded: beyond
        the hub's limit the session resyncs instead) and each delivery wakes the command loop."""
        self._sub = self.store.hub.subscribe(user)
        self._sub.on_delivery = self._wake

    def _wake(self) -> None:
        if not self._wake_queued:
            self._wake_queued = True
            self._put((_WAKE, b""))

    def _emit(self, resp: Response) -> None:
        if type(resp) is FetchData and self.sel is not None:
            self._announce_keywords(resp)
        data = self.conn.send(resp)
        self._out.append(data)
        self._out_size += len(data)

    async def _enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (FETCH MODSEQ, SEARCH MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE)
        turns CONDSTORE on; the first one with a mailbox selected reports its HIGHESTMODSEQ
        (RFC 7162 3.1), as it would have come with SELECT."""
        if self.condstore:
            return
        self.condstore = True
        if self.sel is None or self.user is None:
            return
        st = await self._db(self.store.status, self.user, self.sel.id)
        if st.nomodseq:
            self._emit(StatusResponse(None, "OK", ResponseCode("NOMODSEQ"), "No mod-sequences"))
        else:
            self._emit(StatusResponse(None, "OK", ResponseCode("HIGHESTMODSEQ", st.highestmodseq), "Highest"))

    def _announce_keywords(self, resp: FetchData) -> None:
        """A keyword new to the mailbox goes out in untagged FLAGS (and PERMANENTFLAGS) before the
        first FETCH FLAGS that carries it (RFC 3501 7.2.6), whichever session set it."""
        flags = resp.items.get("FLAGS")
        sel = self.sel
        if not isinstance(flags, tuple | list) or sel is None:
            return
        known = sel.keywords
        new = [f for f in flags if isinstance(f, str) and f[:1] != "\\" and f.lower() not in known]
        if not new:
            return
        for f in new:
            known[f.lower()] = f
        all_flags = (*_SYSTEM_FLAGS, *known.values())
        self._emit(FlagsData(all_flags))
        perm: tuple[str, ...] = () if sel.readonly else (*all_flags, "\\*")
        self._emit(StatusResponse(None, "OK", ResponseCode("PERMANENTFLAGS", perm), "Flags permitted"))

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
        transport = self.writer.transport
        if transport.is_closing():  # the client is gone: what drain() would have raised
            raise ConnectionResetError("connection lost")
        self.writer.write(self.conn.wire(data))
        self._note_held()
        if not transport.get_write_buffer_size():
            return  # the socket took it all: nothing to wait for (and no timer to arm)
        try:  # a client that stops reading for as long as an idle one may sleep is gone
            async with asyncio.timeout(self.settings.server.idle_timeout_s):
                await self.writer.drain()
        except TimeoutError:
            self.writer.transport.abort()
            raise ConnectionError("client stopped reading") from None

    def _tagged(self, tag: str, status: str, text: str, code: ResponseCode | None = None) -> None:
        self._emit(StatusResponse(tag, status, code, text))

    async def _db(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one store call in a worker thread (the store is synchronous and thread-safe)."""
        return await self.ctx.store_calls.call(fn, *args, **kwargs)

    async def _db_short(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`_db` for a write bounded by its arguments (one message, one user's rows) that takes
        `wait`: on the loop itself when no other store call runs and the store's commits wait
        neither for the disk nor for the network (StoreWorkers.call_short). There it must not
        wait for the write lock (another process may hold it for long): if it is taken, the call
        goes to a worker thread and waits there, as every call does otherwise."""
        calls = self.ctx.store_calls
        if self.store.commits_without_waiting and calls.idle:
            try:
                return await calls.call_short(fn, *args, wait=False, **kwargs)
            except StoreBusy:
                pass
        return await calls.call(fn, *args, **kwargs)

    async def _db_read(self, quick: Callable[[], _T | None], full: Callable[[], _T]) -> _T:
        """A read: `quick()` on the loop itself when no other store call runs and the store's
        reads wait neither for the network nor for a writer (SQLite; StoreWorkers.call_short),
        else `full()` on a worker thread. `quick` bounds its own work (_SHORT_SELECT_MESSAGES,
        _SHORT_FETCH_MESSAGES, _SHORT_READ_BYTES) and answers None past its bound, or raises
        StoreBusy where it would have to wait; `full` then runs on a worker. The hop to a worker
        thread and back cost more than such a read: a third of the server's CPU in a first sync
        of 10,000 one-message folders (an EXAMINE and a FETCH each)."""
        calls = self.ctx.store_calls
        if self.store.reads_without_waiting and calls.idle:
            try:
                got = await calls.call_short(quick)
            except StoreBusy:
                got = None
            if got is not None:
                return got
        return await calls.call(full)

    async def _next_item(self) -> tuple[str, bytes]:
        """The next inbox item, or raise TimeoutError (idle timeout) / return a keep-alive tick."""
        if self._inbox:
            return self._inbox.popleft()
        server = self.settings.server
        when = self._last_activity + server.idle_timeout_s
        tick = False
        if self.state.sub is SubState.IDLE and server.idle_keepalive_s > 0:
            at = time.monotonic() + server.idle_keepalive_s
            if at < when:
                when, tick = at, True
        loop = asyncio.get_running_loop()
        waiter = self._inbox_waiter = loop.create_future()
        timer = loop.call_at(_loop_time(when), _set_done, waiter)  # one timer, no Timeout context
        try:
            await waiter
        finally:
            timer.cancel()
            self._inbox_waiter = None
        if self._inbox:
            return self._inbox.popleft()
        if tick:
            return ("tick", b"")
        raise TimeoutError

    async def _main(self) -> None:
        await self._greeting()
        while True:
            if self._shutdown:
                await self._bye("Server shutting down")
                return
            try:
                ev = self.conn.next_event()
            except ImapProtocolError as e:
                await self._protocol_error(e)
                continue
            except StreamCorrupt:
                return
            if ev is NEED_DATA:
                if self.state.state is ConnState.LOGOUT:
                    return
                try:
                    await self._flush_push()
                except (ConnectionError, OSError):
                    raise
                except Exception:  # a store hiccup while pushing must not end the session
                    log.exception("push failed", extra=kv(session=self.id))
                await self._flush_out()
                try:
                    kind, data = await self._next_item()
                except TimeoutError:
                    await self._bye("Autologout; idle for too long")
                    return
                if kind == _WAKE:
                    self._wake_queued = False
                if kind == _DATA:
                    self._took_input(data)
                    self._last_activity = time.monotonic()
                    try:
                        self.conn.receive_data(data)
                    except StreamCorrupt:  # nothing sane can follow
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
                if self._out_size >= _WRITE_BATCH_BYTES:  # pipelined commands: replies go out as
                    await self._flush_out()  # they add up, each write waits for the client
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
        if isinstance(e, InvalidMailboxNameError) and tag:
            if e.command in ("SELECT", "EXAMINE") and self.sel is not None:
                self.sel = None  # a failed SELECT leaves no mailbox selected (RFC 3501 6.3.1)
                self.state.deselected()
            self._tagged(tag, "NO", e.message, ResponseCode("CANNOT"))
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
        if log.isEnabledFor(logging.DEBUG):  # the command's name only: arguments may hold a password
            log.debug("command", extra=kv(session=self.id, command=type(cmd).__name__, tag=tag))
        try:
            spec = spec_of(cmd)
            self.state.check(spec)
            needed = spec.required_capability(cmd)
            if needed is not None and not self._ext(needed):
                raise _Bad(f"{needed} is not enabled")
            await self.handlers[type(cmd)](self, cmd)
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


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _loop_time(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "unix")
