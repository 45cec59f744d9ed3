"""The daemon's asyncio IMAP client: the sans-I/O codec (`cpmsync.imap`) over asyncio streams.

One reader task (owned by the client's TaskGroup) feeds the ImapConnection (client role) and routes every
response: tagged ones complete their command, untagged ones the pending command expects are
collected by it, everything else (NOTIFY/IDLE news) goes to the push queue and is never dropped.
A cut connection fails every pending command at once with `ImapConnectionLost`, so the sync
engine sees one typed error and reconnects; nothing half-read ever reaches the cache.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from cpmsync.imap import (
    NEED_DATA,
    AuthenticateCommand,
    CapabilityCommand,
    CapabilityData,
    CloseCommand,
    Command,
    CompressCommand,
    ContinuationRequest,
    EnableCommand,
    EnabledData,
    ExistsData,
    FetchCommand,
    FetchData,
    FlagsData,
    IdleCommand,
    ImapProtocolError,
    ListCommand,
    ListData,
    LoginCommand,
    LogoutCommand,
    NoopCommand,
    NotifyCommand,
    RecentData,
    SearchCommand,
    SearchData,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StatusData,
    StatusResponse,
    UnselectCommand,
    VanishedData,
)
from cpmsync.imap.connection import ImapConnection, Role, StreamCorrupt
from cpmsync.imap.responses import ESearchData, Response
from cpmsync.imap.state import SessionState, SubState
from cpmsync.logs import kv

__all__ = [
    "ByteCounters",
    "CommandResult",
    "IdleEnd",
    "ImapClient",
    "ImapCommandError",
    "ImapConnectionLost",
    "ImapError",
    "ImapTimeout",
    "PushEvent",
    "TlsMode",
]

log = logging.getLogger("cpmsync.daemon.imap")

TlsMode = Literal["none", "starttls", "implicit"]
Direction = Literal["in", "out"]


class ImapError(Exception):
    """Base of every error the client raises."""


class ImapConnectionLost(ImapError):
    """The connection is gone (cut, BYE, malformed data): every pending command fails with this."""


class ImapTimeout(ImapError):
    """A command got no tagged answer within command_timeout_s; the connection is then closed."""


class ImapCommandError(ImapError):
    """The server answered NO or BAD."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        st = result.status
        super().__init__(f"{st.status} {st.code.name if st.code else ''} {st.text}".strip())

    @property
    def code(self) -> str | None:
        st = self.result.status
        return st.code.name if st.code else None


@dataclass
class ByteCounters:
    """Bytes at the IMAP layer (before compression) and on the socket (after it)."""

    imap_in: int = 0
    imap_out: int = 0
    wire_in: int = 0
    wire_out: int = 0

    def snapshot(self) -> ByteCounters:
        # Taken after every answer of a pipeline: the constructor, not dataclasses.replace (5x).
        return ByteCounters(self.imap_in, self.imap_out, self.wire_in, self.wire_out)

    def since(self, before: ByteCounters) -> ByteCounters:
        return ByteCounters(
            self.imap_in - before.imap_in,
            self.imap_out - before.imap_out,
            self.wire_in - before.wire_in,
            self.wire_out - before.wire_out,
        )


@dataclass(frozen=True)
class PushEvent:
    """An unsolicited response and the mailbox that was selected when it arrived."""

    response: Response
    selected: str | None


@dataclass
class CommandResult:
    """What a command produced: its tagged status and the untagged data routed to it."""

    status: StatusResponse
    responses: list[Response] = field(default_factory=list)
    bytes: ByteCounters = field(default_factory=ByteCounters)  # this command's bytes (IMAP/wire)

    def of(self, kind: type[Response]) -> list[Response]:
        return [r for r in self.responses if isinstance(r, kind)]


# Which untagged responses belong to which command; anything else is unsolicited news.
_EXPECTS: dict[type, tuple[type, ...]] = {
    CapabilityCommand: (CapabilityData,),
    ListCommand: (ListData, StatusData),
    StatusCommand: (StatusData,),
    SelectCommand: (FlagsData, ExistsData, RecentData, VanishedData, FetchData, StatusResponse),
    FetchCommand: (FetchData, VanishedData),
    SearchCommand: (SearchData, ESearchData),
    EnableCommand: (EnabledData,),
}


@dataclass
class _Pending:
    cmd: Command
    future: asyncio.Future[CommandResult]
    responses: list[Response] = field(default_factory=list)
    on_ok: Callable[[], None] | None = None

    @functools.cached_property
    def continuation(self) -> asyncio.Queue[ContinuationRequest]:
        """Made only for the few commands that wait for a `+` (a queue per command costs a
        first sync of 10,000 folders 30,000 queues)."""
        return asyncio.Queue()

    def wants(self, resp: Response) -> bool:
        kinds = _EXPECTS.get(type(self.cmd), ())
        if isinstance(resp, StatusResponse):
            # Untagged OK [UIDVALIDITY ...] etc. belong to SELECT; BYE/NO/BAD are logged.
            return isinstance(self.cmd, SelectCommand) and resp.status == "OK"
        if isinstance(resp, StatusData) and isinstance(self.cmd, StatusCommand):
            return resp.mailbox == self.cmd.mailbox
        if isinstance(resp, StatusData) and isinstance(self.cmd, ListCommand):
            return self.cmd.return_status is not None  # else NOTIFY news, never this LIST's
        if isinstance(resp, VanishedData) and isinstance(self.cmd, FetchCommand | SelectCommand):
            return resp.earlier
        if isinstance(resp, FetchData) and isinstance(self.cmd, SelectCommand):
            return True
        return isinstance(resp, kinds)


def _loopback(host: str) -> bool:
    from cpmsync.daemon.settings import is_loopback

    return is_loopback(host)


class ImapClient:
    """`async with ImapClient(host, port, tls=...) as imap:` then `await imap.login(user, pw)`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsMode = "implicit",
        ca_file: Path | str | None = None,
        allow_plaintext: bool = False,
        command_timeout_s: float = 60.0,
        connect_timeout_s: float = 20.0,
        trace: bool = False,
        conn_id: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls == "none" and not allow_plaintext and not _loopback(host):
            raise ValueError(f"plaintext IMAP to non-loopback host {host!r} needs allow_plaintext")
        self.host, self.port, self.tls = host, port, tls
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.counters = ByteCounters()
        self.trace_enabled = trace
        self.trace: list[tuple[float, str, int]] = []
        self.conn_id = conn_id or f"{host}:{port}@{time.time():.3f}"
        self._capabilities: tuple[str, ...] = ()
        self._caps_upper: frozenset[str] = frozenset()
        self.enabled: set[str] = set()
        self.fetch_raw_addresses = False
        """The server garbled an ENVELOPE address on this connection: fetch raw From/To with new
        messages (cpmsync.daemon.sync), not in a second FETCH."""
        self._ssl_context = ssl_context
        self._ca_file = ca_file
        # Framing, COMPRESS (bounded-step inflate, as on the server side) and the bytes at the
        # IMAP layer: the sans-I/O connection; this class only moves bytes and routes responses.
        self._conn = ImapConnection(Role.CLIENT)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, _Pending] = {}
        self.push = PushStream()
        self._tagno = 0
        self._lock = asyncio.Lock()
        self._closed: BaseException | None = None
        self._entered = False
        self._stack: contextlib.AsyncExitStack | None = None
        self._reader_task: asyncio.Task[None] | None = None

    # ---- lifetime -------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        ctx = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)
        return ctx

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an ImapClient is one connection: enter it once, make a new one to reconnect")
        self._entered = True
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self._open()
        except TimeoutError as e:
            raise ImapConnectionLost(f"connect to {self.host}:{self.port} timed out") from e
        except OSError as e:
            raise ImapConnectionLost(f"connect to {self.host}:{self.port}: {e}") from e
        async with contextlib.AsyncExitStack() as stack:
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            self._reader_task = tg.create_task(self._read_loop(), name=f"imap-reader {self.conn_id}")
            stack.callback(self._stop_reader)  # runs first on exit, then the TaskGroup joins it
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._stack is not None
        await self._stack.aclose()

    def _stop_reader(self) -> None:
        self._abort(ImapConnectionLost("client closed"))
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _open(self) -> None:
        ctx = self._context() if self.tls == "implicit" else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=ctx, server_hostname=self.host if ctx else None
        )
        greeting = await self._read_inline()
        if not isinstance(greeting, StatusResponse) or greeting.status not in ("OK", "PREAUTH"):
            raise ImapConnectionLost(f"unexpected greeting: {greeting!r}")
        if greeting.code and greeting.code.name == "CAPABILITY":
            self.capabilities = tuple(greeting.code.value)  # type: ignore[arg-type]
        if self.tls == "starttls":
            for chunk in self._conn.send_command(StartTlsCommand("S0")):
                self._send_raw(chunk)
            while True:
                resp = await self._read_inline()
                if isinstance(resp, StatusResponse) and resp.tag == "S0":
                    break
            if resp.status != "OK":
                raise ImapConnectionLost(f"STARTTLS refused: {resp.text}")
            if self._conn.take_buffered():
                raise ImapConnectionLost("data injected before the TLS handshake")
            await self._writer.start_tls(self._context(), server_hostname=self.host)
            self.capabilities = ()

    async def _read_inline(self) -> Response:
        """Before the reader task runs (greeting, STARTTLS): read one response directly."""
        assert self._reader is not None
        while True:
            ev = self._conn.next_event()
            if ev is not NEED_DATA:
                return ev  # type: ignore[return-value]
            data = await self._reader.read(65536)
            if not data:
                raise ImapConnectionLost("connection closed during greeting")
            self._receive(data)

    def _receive(self, data: bytes) -> None:
        before = self._conn.plain_in
        self._conn.receive_data(data)
        self._count("in", self._conn.plain_in - before, len(data))

    def _count(self, direction: Direction, imap_n: int, wire_n: int) -> None:
        c = self.counters
        if direction == "in":
            c.imap_in += imap_n
            c.wire_in += wire_n
        else:
            c.imap_out += imap_n
            c.wire_out += wire_n
        if self.trace_enabled and wire_n:
            self.trace.append((time.time(), direction, wire_n))

    def take_trace(self) -> list[tuple[float, str, int]]:
        out, self.trace = self.trace, []
        return out

    def _send_raw(self, data: bytes) -> None:
        if self._closed is not None:
            raise ImapConnectionLost(str(self._closed))
        assert self._writer is not None
        wire = self._conn.wire(data)
        self._count("out", len(data), len(wire))
        self._writer.write(wire)

    def _abort(self, exc: BaseException) -> None:
        """Fail every pending command at once and close the socket."""
        if self._closed is None:
            self._closed = exc
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(ImapConnectionLost(str(exc)))
                p.future.exception()  # a waiter that already left (IDLE) must not log it again
        self._pending.clear()
        self.push.close(self._closed)  # a consumer waiting for news sees the close
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def in_flight(self) -> int:
        """Commands sent and not answered yet."""
        return len(self._pending)

    @property
    def compressed(self) -> bool:
        """COMPRESS=DEFLATE is on (both ways)."""
        return self._conn.compressed

    @property
    def state(self) -> SessionState:
        """Where the connection is in RFC 3501's state machine, as far as the reader has read."""
        return self._conn.state

    @property
    def selected(self) -> str | None:
        """The mailbox selected at the point of the response stream the reader has reached (the
        connection's RFC 3501 state, moved by the answers to SELECT/EXAMINE, UNSELECT, CLOSE):
        an EXISTS that arrives just before a SELECT of another folder is answered belongs to the
        old one, and a push hint must name that one."""
        return self._conn.state.mailbox

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                self._dispatch_available()
                data = await self._reader.read(65536)
                if not data:
                    raise ImapConnectionLost("server closed the connection")
                self._receive(data)
        except ImapProtocolError as e:
            log.error(
                "malformed IMAP response: %s in %r", e.message, e.line[:120], extra=kv(conn=self.conn_id)
            )
            self._abort(ImapConnectionLost(f"malformed response: {e.message}"))
        except (OSError, ImapConnectionLost, StreamCorrupt, EOFError) as e:
            self._abort(e if isinstance(e, ImapConnectionLost) else ImapConnectionLost(str(e)))
        except asyncio.CancelledError:
            self._abort(ImapConnectionLost("client closed"))
            raise
        except Exception as e:  # a bug in routing must not leave commands waiting for ever
            log.exception("IMAP reader failed", extra=kv(conn=self.conn_id))
            self._abort(ImapConnectionLost(f"reader failed: {type(e).__name__}: {e}"))

    def _dispatch_available(self) -> None:
        while True:
            before = self._conn.plain_in
            ev = self._conn.next_event()  # may inflate the next bounded step of a large read
            if self._conn.plain_in != before:
                self._count("in", self._conn.plain_in - before, 0)
            if ev is NEED_DATA:
                return
            self._route(ev)  # type: ignore[arg-type]

    def _route(self, resp: Response) -> None:
        if isinstance(resp, StatusResponse) and resp.tag is not None:
            p = self._pending.pop(resp.tag, None)
            if p is None:
                log.warning("tagged response for unknown tag %s", resp.tag, extra=kv(conn=self.conn_id))
                return
            if resp.status == "OK" and p.on_ok is not None:
                p.on_ok()
            if resp.code and resp.code.name == "CAPABILITY":
                self.capabilities = tuple(resp.code.value)  # type: ignore[arg-type]
            if not p.future.done():
                p.future.set_result(CommandResult(resp, p.responses))
            return
        if isinstance(resp, ContinuationRequest):
            for p in self._pending.values():
                p.continuation.put_nowait(resp)
                return
            log.warning("unexpected continuation request", extra=kv(conn=self.conn_id))
            return
        if isinstance(resp, StatusResponse) and resp.status == "BYE":
            log.info("server says BYE: %s", resp.text, extra=kv(conn=self.conn_id))
            return  # the close follows; pending commands fail then
        if isinstance(resp, CapabilityData):
            self.capabilities = resp.capabilities
        if isinstance(resp, StatusResponse) and resp.code and resp.code.name == "CAPABILITY":
            self.capabilities = tuple(resp.code.value)  # type: ignore[arg-type]
        if self._conn.state.sub is not SubState.IDLE:
            for i, p in enumerate(self._pending.values()):
                # A SELECT's data comes after every command sent before it is answered: until
                # then an EXISTS or FETCH is about the mailbox still selected, not the new one,
                # and no command pipelined after that SELECT (or an UNSELECT) has data yet.
                if i > 0 and isinstance(p.cmd, SelectCommand | UnselectCommand | CloseCommand):
                    break
                if p.wants(resp):
                    p.responses.append(resp)
                    return
        if isinstance(resp, StatusResponse) and resp.status in ("NO", "BAD"):
            log.warning("untagged %s: %s", resp.status, resp.text, extra=kv(conn=self.conn_id))
        if log.isEnabledFor(logging.DEBUG):
            where = kv(conn=self.conn_id, selected=self.selected)
            log.debug("push %s", type(resp).__name__, extra=where)
        self.push.put(PushEvent(resp, self.selected))

    # ---- commands -------------------------------------------------------------------------

    def _with_tag(self, cmd: Command) -> Command:
        """The command under this connection's next tag (C1, C2, ...)."""
        self._tagno += 1
        return dataclasses.replace(cmd, tag=f"C{self._tagno}")

    @contextlib.asynccontextmanager
    async def _pending_call(
        self, cmd: Command, *, on_ok: Callable[[], None] | None = None
    ) -> AsyncIterator[_Pending]:
        """Every command's life: registered under its tag so the reader can route its answer,
        unregistered on the way out whatever happens (answer, NO, timeout, cut, cancel)."""
        p = self._register(cmd, on_ok=on_ok)
        try:
            yield p
        finally:
            self._pending.pop(cmd.tag, None)

    def _register(self, cmd: Command, *, on_ok: Callable[[], None] | None = None) -> _Pending:
        """Registered under its tag so the reader can route its answer; the caller unregisters it
        (`_pending_call`, or a pipeline as it takes each answer)."""
        if self._closed is not None:
            raise ImapConnectionLost(str(self._closed))
        p = _Pending(cmd, asyncio.get_running_loop().create_future(), on_ok=on_ok)
        self._pending[cmd.tag] = p
        return p

    @contextlib.asynccontextmanager
    async def _within(self, timeout_s: float, what: str) -> AsyncIterator[None]:
        """No answer in time: the link is presumed dead, every pending command fails with it."""
        try:
            async with asyncio.timeout(timeout_s):
                yield
        except TimeoutError:
            self._abort(ImapTimeout(f"{what} timed out"))
            raise ImapTimeout(f"{what} got no answer in time") from None

    def _send_command(self, p: _Pending) -> list[bytes]:
        """Write the command; return the pieces still to send, each after a `+` continuation."""
        chunks = self._conn.send_command(p.cmd, literal_plus=self.literal_plus)
        self._send_raw(chunks[0])
        return chunks[1:]

    @property
    def literal_plus(self) -> bool:
        return self.has("LITERAL+")

    @property
    def capabilities(self) -> tuple[str, ...]:
        return self._capabilities

    @capabilities.setter
    def capabilities(self, caps: tuple[str, ...]) -> None:
        self._capabilities = caps
        self._caps_upper = frozenset(c.upper() for c in caps)

    def has(self, cap: str) -> bool:
        """Asked per command (LITERAL+ for each one a pipeline sends): a set lookup."""
        return cap.upper() in self._caps_upper

    async def execute(
        self,
        cmd: Command,
        *,
        check: bool = True,
        timeout_s: float | None = None,
        on_ok: Callable[[], None] | None = None,
    ) -> CommandResult:
        """Send one command (its tag is replaced), wait for the tagged answer; NO/BAD raise if check."""
        async with self._lock, self._pending_call(self._with_tag(cmd), on_ok=on_ok) as p:
            before = self.counters.snapshot()
            async with self._within(timeout_s or self.command_timeout_s, type(cmd).__name__):
                for chunk in self._send_command(p):
                    await self._wait_continuation(p)
                    self._send_raw(chunk)
                result = await p.future
            result.bytes = self.counters.since(before)
        if check and result.status.status != "OK":
            raise ImapCommandError(result)
        return result

    async def execute_pipelined(
        self, cmds: Sequence[Command], *, window: int, check: bool = True
    ) -> list[CommandResult]:
        """Send `cmds` with up to `window` unanswered at once; results in the order of `cmds`.

        One round trip per window instead of one per command (10,000 STATUS: 12.8 s of waiting
        otherwise). See `pipeline`; NO/BAD raise (after every answer is in) if `check`.
        """
        async with contextlib.aclosing(self.pipeline(cmds, window=window)) as answers:
            results = [r async for r in answers]
        if check:
            for r in results:
                if r.status.status != "OK":
                    raise ImapCommandError(r)
        return results

    async def pipeline(self, cmds: Iterable[Command], *, window: int) -> AsyncGenerator[CommandResult, None]:
        """Send `cmds` with up to `window` unanswered at once; yield each result as it comes, in order.

        `cmds` is read lazily, so a caller may shape later commands by earlier answers or stop
        producing them. The reader routes each answer by its tag, and each untagged STATUS to the
        command naming that mailbox. The window is refilled in one write (one deflate flush) once
        half of it is answered (refilling at each eighth made no difference over emulated LTE: the
        window is full of answers the caller has not digested yet when the caller is the slower
        side). A command that needs a synchronizing literal is sent alone. Each result's `bytes`
        is what crossed between the previous answer and its own, so the results add up exactly
        to the pipeline's bytes. A timeout (no answer to the oldest command within
        command_timeout_s) or a cut fails every command of the pipeline, as in `execute`. The
        caller must not send other commands while iterating (`async with contextlib.aclosing`);
        leaving with commands in flight closes the link (their answers would be taken for news).
        """
        window = max(1, window)
        source = iter(cmds)
        held: Command | None = None  # taken from `source`, not sent yet
        exhausted = False
        async with self._lock:
            inflight: collections.deque[_Pending] = collections.deque()
            mark = self.counters.snapshot()
            try:
                while True:
                    if not exhausted and len(inflight) <= window // 2:
                        batch: list[bytes] = []
                        while len(inflight) < window:
                            if held is None:
                                held = next(source, None)
                                if held is None:
                                    exhausted = True
                                    break
                            cmd = self._with_tag(held)
                            chunks = self._conn.send_command(cmd, literal_plus=self.literal_plus)
                            if len(chunks) > 1 and (inflight or batch):
                                break  # a synchronizing literal: after the window is answered
                            held = None
                            p = self._register(cmd)  # unregistered once answered, or in `finally`
                            inflight.append(p)
                            if len(chunks) > 1:
                                async with self._within(self.command_timeout_s, "pipelined command"):
                                    for chunk in self._send_command(p):
                                        await self._wait_continuation(p)
                                        self._send_raw(chunk)
                                break
                            batch.append(chunks[0])
                        if batch:
                            self._send_raw(b"".join(batch))
                    if not inflight:
                        return
                    fut = inflight[0].future
                    if not fut.done():  # a burst's later answers are in already: no timer for them
                        async with self._within(self.command_timeout_s, "pipelined command"):
                            await fut
                    result = fut.result()
                    self._pending.pop(inflight.popleft().cmd.tag, None)
                    now = self.counters.snapshot()
                    result.bytes, mark = now.since(mark), now
                    yield result
            finally:
                if inflight and self._closed is None:
                    self._abort(ImapConnectionLost("pipeline left with commands in flight"))
                for p in inflight:
                    self._pending.pop(p.cmd.tag, None)

    async def _wait_continuation(self, pending: _Pending) -> None:
        cont_task = asyncio.ensure_future(pending.continuation.get())
        try:
            waiters: set[asyncio.Future[object]] = {cont_task, pending.future}  # type: ignore[arg-type]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cont_task.cancel()
        if pending.future.done():
            pending.future.result()  # raises if the connection died
            raise ImapCommandError(pending.future.result())

    async def capability(self) -> tuple[str, ...]:
        res = await self.execute(CapabilityCommand(""))
        for r in res.responses:
            if isinstance(r, CapabilityData):
                self.capabilities = r.capabilities
        return self.capabilities

    async def login(self, username: str, password: str, *, mechanism: str = "plain") -> None:
        """AUTHENTICATE PLAIN (with SASL-IR when offered) or LOGIN; then the capabilities of the
        authenticated state: from the OK's CAPABILITY code where the server sent one (Dovecot and
        msgstore do, RFC 3501 6.2.2 allows it), else re-read (one round trip less per connect)."""
        if not self.capabilities:
            await self.capability()
        if mechanism == "plain" and self.has("AUTH=PLAIN"):
            ir = b"\0" + username.encode() + b"\0" + password.encode()
            if self.has("SASL-IR"):
                done = await self.execute(AuthenticateCommand("", "PLAIN", ir))
            else:
                done = await self._authenticate_continuation(ir)
        else:
            done = await self.execute(LoginCommand("", username, password))
        code = done.status.code
        if code is None or code.name != "CAPABILITY":
            await self.capability()

    async def _authenticate_continuation(self, ir: bytes) -> CommandResult:
        async with self._lock, self._pending_call(self._with_tag(AuthenticateCommand("", "PLAIN"))) as p:
            async with self._within(self.command_timeout_s, "AUTHENTICATE"):
                self._send_command(p)
                await self._wait_continuation(p)
                self._send_raw(self._conn.send_sasl_response(ir))
                result = await p.future
        if result.status.status != "OK":
            raise ImapCommandError(result)
        return result

    async def enable(self, *caps: str) -> set[str]:
        wanted = [c for c in caps if self.has(c)]
        if not wanted or not self.has("ENABLE"):
            return set()
        self._take_enabled(await self.execute(EnableCommand("", tuple(wanted))))
        return self.enabled

    def _take_enabled(self, res: CommandResult) -> None:
        for r in res.responses:
            if isinstance(r, EnabledData):
                self.enabled.update(c.upper() for c in r.capabilities)

    async def compress(self) -> bool:
        """COMPRESS=DEFLATE (RFC 4978): raw deflate both ways from right after the tagged OK."""
        if not self.has("COMPRESS=DEFLATE") or self.compressed:
            return False

        # In the reader task right after the OK line: later bytes, both ways, are compressed.
        await self.execute(CompressCommand(""), on_ok=self._conn.start_compression)
        return True

    async def enable_and_compress(self, caps: Sequence[str], *, compress: bool) -> None:
        """ENABLE `caps` (those offered) and COMPRESS=DEFLATE (if `compress` and offered) in one
        write and one round trip instead of two. COMPRESS goes last: nothing may follow it until
        its OK, after which both directions deflate (RFC 4978 section 3); ENABLE is answered first."""
        wanted = tuple(c for c in caps if self.has(c)) if self.has("ENABLE") else ()
        deflate = compress and self.has("COMPRESS=DEFLATE") and not self.compressed
        if not (wanted and deflate):
            if deflate:
                await self.compress()
            if wanted:
                await self.enable(*wanted)
            return
        enable = self._with_tag(EnableCommand("", wanted))
        comp = self._with_tag(CompressCommand(""))
        async with (
            self._lock,
            self._pending_call(enable) as pe,
            self._pending_call(comp, on_ok=self._conn.start_compression) as pc,
        ):
            async with self._within(self.command_timeout_s, "ENABLE + COMPRESS"):
                (first,) = self._conn.send_command(enable)
                (second,) = self._conn.send_command(comp)
                self._send_raw(first + second)
                results = (await pe.future, await pc.future)
        self._take_enabled(results[0])
        for r in results:
            if r.status.status != "OK":
                raise ImapCommandError(r)

    async def noop(self, *, timeout_s: float | None = None) -> None:
        await self.execute(NoopCommand(""), timeout_s=timeout_s)

    async def logout(self) -> None:
        with contextlib.suppress(ImapError):
            await self.execute(LogoutCommand(""), timeout_s=min(5.0, self.command_timeout_s))

    async def list_folders(
        self,
        pattern: str = "*",
        *,
        changedsince: int | None = None,
        return_status: Iterable[str] | None = None,
    ) -> tuple[list[ListData], dict[str, StatusData]]:
        cmd = ListCommand(
            "",
            "",
            (pattern,),
            changedsince=changedsince,
            return_status=tuple(return_status) if return_status is not None else None,
        )
        res = await self.execute(cmd)
        # NOTIFY news that crossed the command on the wire (sent by the server before it read the
        # LIST, routed here because the reader saw it after the LIST left) is told apart by what
        # this LIST cannot answer; it goes back to the push queue, never into the listing. Found by
        # the soak: a STATUS read as a names-only LIST's answer, or a rename's `OLDNAME` LIST taken
        # as a listed folder, lost that change for good.
        plain = changedsince is None  # only LIST-CHANGEDSINCE reports gone and renamed folders
        lists: list[ListData] = []
        listed: set[str] = set()
        statuses: dict[str, StatusData] = {}
        for r in res.responses:
            if isinstance(r, ListData):
                gone_or_moved = r.oldname is not None or r.nonexistent
                if r.name in listed or (plain and gone_or_moved):
                    self.push.put_back(r, self.selected)
                else:
                    listed.add(r.name)
                    lists.append(r)
            elif isinstance(r, StatusData):
                # RFC 5819: a mailbox's STATUS follows its LIST line. One before it, a second one,
                # or any in a LIST without RETURN (STATUS) is news.
                if return_status is not None and r.mailbox in listed and r.mailbox not in statuses:
                    statuses[r.mailbox] = r
                else:
                    self.push.put_back(r, self.selected)
        return lists, statuses

    async def list_changed_since(
        self, modseq: int, status_items: Iterable[str] = ("MESSAGES", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ")
    ) -> tuple[list[ListData], dict[str, StatusData]]:
        return await self.list_folders("*", changedsince=modseq, return_status=status_items)

    async def status(self, mailbox: str, items: Iterable[str]) -> StatusData | None:
        return self._status_answer(await self.execute(StatusCommand("", mailbox, tuple(items))))

    def _status_answer(self, res: CommandResult) -> StatusData | None:
        """The answer is the last STATUS before the tagged OK; an earlier one for the same mailbox
        was NOTIFY news that arrived while the command was pending: back to the push queue."""
        found = [r for r in res.responses if isinstance(r, StatusData)]
        for news in found[:-1]:
            self.push.put_back(news, self.selected)
        return found[-1] if found and res.status.status == "OK" else None

    async def status_many(
        self, mailboxes: Sequence[str], items: Iterable[str], *, window: int
    ) -> dict[str, StatusData | None]:
        """STATUS of many mailboxes, pipelined `window` deep; None for a mailbox answered NO."""
        its = tuple(items)
        results = await self.execute_pipelined(
            [StatusCommand("", m, its) for m in mailboxes], window=window, check=False
        )
        return {name: self._status_answer(res) for name, res in zip(mailboxes, results, strict=True)}

    def unselect_command(self) -> Command:
        """UNSELECT when offered, else CLOSE: mailboxes are EXAMINEd (read-only), CLOSE never expunges."""
        return UnselectCommand("") if self.has("UNSELECT") else CloseCommand("")

    async def select(self, cmd: SelectCommand) -> CommandResult:
        """SELECT/EXAMINE; an open mailbox is first closed in the same write (no extra round trip).

        Without the explicit close, news about the old mailbox that the server sends just before
        it switches cannot be told from the new mailbox's SELECT data (and servers without
        QRESYNC send no [CLOSED] to mark the switch).
        """
        if self.selected is None:
            return await self.execute(cmd)
        close, res = await self.execute_pipelined([self.unselect_command(), cmd], window=2, check=False)
        if close.status.status != "OK":
            raise ImapCommandError(close)
        if res.status.status != "OK":
            raise ImapCommandError(res)
        return res

    async def unselect(self) -> None:
        if self.selected is None:
            return
        await self.execute(self.unselect_command())

    async def notify_set(self, cmd: NotifyCommand) -> None:
        await self.execute(cmd)

    # ---- push -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def idle(self, *, done_timeout_s: float | None = None) -> AsyncIterator[IdleEnd]:
        """IDLE for the body of the `async with`; unsolicited responses arrive on `push`.

        `done_timeout_s`: how long DONE may wait for its answer (a heartbeat's dead-link test).
        The body may set `end.wait_for_answer = False` (news came, commands follow): DONE then
        leaves without waiting for IDLE's tagged OK, and the next command goes out in the same
        round trip. The server answers in order, so that command's answer (and its timeout)
        comes after the IDLE's; responses before the OK are news, as during IDLE."""
        end = IdleEnd()
        async with self._lock:
            if self._closed is not None:
                raise ImapConnectionLost(str(self._closed))
            cmd = self._with_tag(IdleCommand(""))
            p = _Pending(cmd, asyncio.get_running_loop().create_future())
            self._pending[cmd.tag] = p
            deferred = False
            try:
                async with self._within(self.command_timeout_s, "IDLE"):
                    self._send_command(p)
                    await self._wait_continuation(p)
                body_ok = False
                try:
                    yield end
                    body_ok = True
                finally:
                    try:
                        if self._closed is None:
                            self._send_raw(self._conn.send_done())
                            if body_ok and not end.wait_for_answer:
                                deferred = True
                                p.future.add_done_callback(self._idle_answered)
                            else:
                                async with self._within(
                                    done_timeout_s or self.command_timeout_s, "IDLE DONE"
                                ):
                                    await p.future
                    except ImapTimeout:
                        if body_ok:  # else the body's own exception goes on
                            raise
                if body_ok and self._closed is not None:
                    raise ImapConnectionLost(str(self._closed))  # never a silent "DONE answered"
            finally:
                if not deferred:
                    self._pending.pop(cmd.tag, None)

    def _idle_answered(self, fut: asyncio.Future[CommandResult]) -> None:
        """The tagged answer to an IDLE whose DONE did not wait (the reader unregistered it)."""
        if fut.cancelled() or fut.exception() is not None:
            return  # the connection is gone: the command sent after DONE fails with it
        st = fut.result().status
        if st.status != "OK":
            log.warning("IDLE ended with %s: %s", st.status, st.text, extra=kv(conn=self.conn_id))


@dataclass
class IdleEnd:
    """How `ImapClient.idle()` ends: wait for IDLE's tagged OK after DONE (a heartbeat) or not."""

    wait_for_answer: bool = True


class PushStream:
    """The unsolicited responses of one connection, in arrival order (aiomqtt's messages iterator).

    `async for ev in imap.push:` yields each one; once the connection is gone the iterator raises
    ImapConnectionLost (after what arrived before). `drain()` takes what is queued without waiting.
    """

    def __init__(self) -> None:
        self._queue: collections.deque[PushEvent] = collections.deque()
        self._ready = asyncio.Event()
        self._closed: BaseException | None = None

    def put(self, ev: PushEvent) -> None:
        self._queue.append(ev)
        self._ready.set()

    def put_back(self, resp: Response, selected: str | None) -> None:
        """Give back news a command absorbed but did not ask for (e.g. a NOTIFY STATUS in a LIST)."""
        self.put(PushEvent(resp, selected))

    def close(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        self._ready.set()

    @property
    def waiting(self) -> bool:
        """True when responses are queued (drain would return some)."""
        return bool(self._queue)

    def drain(self) -> list[PushEvent]:
        """What is queued, in arrival order (never blocks)."""
        out = list(self._queue)
        self._queue.clear()
        if self._closed is None:
            self._ready.clear()
        return out

    async def wait(self) -> None:
        """Return once a response is queued; ImapConnectionLost if the link died."""
        while not self._queue:
            if self._closed is not None:
                raise ImapConnectionLost(str(self._closed))
            self._ready.clear()
            await self._ready.wait()

    def __aiter__(self) -> PushStream:
        return self

    async def __anext__(self) -> PushEvent:
        await self.wait()
        return self._queue.popleft()
