"""A fault-injecting TCP proxy, placed between a client under test and a REAL server.

It exists because no real peer produces malformed responses or cuts a connection on demand:
tests of "cut mid-sync", "stalled network", "malformed server line" need a way to make those
happen at a precise point of an otherwise real conversation (Dovecot, msgstore, Mosquitto).
It also counts the bytes each way and records a (time, direction, bytes) trace, the on-the-wire
figures the daemon's byte accounting and the simulator's trace mode are checked against.

Everything runs on the caller's event loop. A blocking client (imaplib) talking through the proxy
must therefore run in a thread (`await asyncio.to_thread(...)`), or it will block the proxy.

    async with FaultProxy(dv.host, dv.port) as px:
        client connects to px.host:px.port
        px.cut_after(down=500)                    # cut once 500 more server bytes went through
        px.replace_next_down_line(b"* BAD (((\\r\\n", startswith=b"* STATUS")
        await px.cut()                            # cut every live connection now

`link=LinkProfile.radio("lte")` makes it a link emulator as well: each direction gets a one-way
delay of RTT/2 and a bandwidth cap, pipelined like a real link (bytes in flight do not wait for
each other's delay), so benchmarks can run "over LTE" on loopback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from tests.support.processes import Managed

__all__ = ["Direction", "FaultProxy", "LinkProfile", "ThreadedFaultProxy", "TraceEntry"]

T = TypeVar("T")

Direction = Literal["up", "down"]
"""up: client → server; down: server → client."""


@dataclass(frozen=True)
class TraceEntry:
    """One forwarded (or injected) chunk: seconds since the proxy started, connection number from 1."""

    t_s: float
    conn: int
    direction: Direction
    nbytes: int
    injected: bool = False
    taken_s: float | None = None
    """With a `link`: when the proxy read the chunk from its sender (t_s is when it was delivered)."""


@dataclass(frozen=True)
class LinkProfile:
    """An emulated link: round-trip time and a bandwidth cap per direction (None: uncapped).

    Each direction is a delay line: a chunk is serialised at the cap after the previous one, then
    arrives RTT/2 later; chunks in flight overlap, as on a real link. `queue_bytes` bounds what
    the proxy reads ahead of delivery (a socket buffer), so a fast sender is slowed to the link.
    """

    rtt_ms: float = 0.0
    up_mbps: float | None = None
    down_mbps: float | None = None
    queue_bytes: int = 4 << 20
    slice_bytes: int = 16384

    @classmethod
    def radio(cls, name: str = "lte") -> LinkProfile:
        """The simulator's median figures for a radio (`lte`: 70 ms, 5.64 up / 12.74 down Mbit/s)."""
        from cpmsync.simulator.radio import load_profile

        t = load_profile(name).transfer
        return cls(rtt_ms=t.rtt_ms, up_mbps=t.uplink_mbps, down_mbps=t.downlink_mbps)

    def mbps(self, direction: Direction) -> float | None:
        return self.up_mbps if direction == "up" else self.down_mbps

    def serialise_s(self, direction: Direction, nbytes: int) -> float:
        rate = self.mbps(direction)
        return 0.0 if rate is None else nbytes * 8 / (rate * 1e6)

    def bound_s(self, bytes_up: int, bytes_down: int, round_trips: int = 0) -> float:
        """The least time these bytes take on this link: the busier direction at its cap, plus
        `round_trips` RTTs of waiting (the bandwidth-bound time benchmarks compare against)."""
        wire = max(self.serialise_s("up", bytes_up), self.serialise_s("down", bytes_down))
        return wire + round_trips * self.rtt_ms / 1000


@dataclass
class _Shaper:
    """One direction of one emulated link: chunks with the time each is due at the other side."""

    profile: LinkProfile
    direction: Direction
    queue: collections.deque[tuple[float, float, bytes | None]] = field(default_factory=collections.deque)
    free_at: float = 0.0  # when the link finishes serialising what it holds
    queued: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, chunk: bytes | None) -> None:
        """Schedule `chunk` (None: the sender closed) behind everything already in flight."""
        p = self.profile
        pieces: list[bytes | None] = [None]
        if chunk is not None:
            pieces = [chunk[i : i + p.slice_bytes] for i in range(0, len(chunk), p.slice_bytes)]
        for piece in pieces:
            now = time.monotonic()
            self.free_at = max(now, self.free_at) + p.serialise_s(self.direction, len(piece or b""))
            self.queue.append((now, self.free_at + p.rtt_ms / 2000, piece))
            self.queued += len(piece or b"")
        self.changed.set()

    async def room(self) -> None:
        while self.queued > self.profile.queue_bytes:
            self.changed.clear()
            await self.changed.wait()

    async def get(self) -> tuple[float, bytes | None]:
        """The next chunk once it is due: (when the proxy took it, chunk)."""
        while not self.queue:
            self.changed.clear()
            await self.changed.wait()
        taken, due, piece = self.queue.popleft()
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.queued -= len(piece or b"")
        self.changed.set()
        return taken, piece


@dataclass
class _Link:
    """One proxied connection: the client's socket and ours to the server."""

    conn: int
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    server_reader: asyncio.StreamReader
    server_writer: asyncio.StreamWriter
    down_at_line_start: bool = True
    pending_inject: list[bytes] = field(default_factory=list)
    line_buffer: bytes = b""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: bool = False
    last_activity: float = field(default_factory=time.monotonic)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    blackholed: bool = False  # its NAT mapping expired: bytes either way vanish, nothing is closed
    profile: LinkProfile | None = None  # the emulated link, if any

    def abort(self, rst: bool = False) -> None:
        """Close both sides now, without flushing; with `rst` the peers see a TCP reset."""
        self.aborted = True
        for task in self.pumps:
            if task is not asyncio.current_task():
                task.cancel()  # a pump held by pause() or a hold never sees the socket close
        for writer in (self.client_writer, self.server_writer):
            if rst:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


@dataclass
class _LineRule:
    replacement: bytes
    startswith: bytes | None
    contains: bytes | None = None


class FaultProxy:
    """Forward TCP from (listen_host, port) to (target_host, target_port), with faults on demand.

    Counters (`bytes_up`, `bytes_down`) and `trace` include every connection since the start or the
    last `reset_counters()`; they count bytes delivered to the other side, injected ones included.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        chunk_bytes: int = 65536,
        connect_timeout_s: float = 10.0,
        link: LinkProfile | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = listen_host
        self.port = listen_port
        self.chunk_bytes = chunk_bytes
        self.connect_timeout_s = connect_timeout_s
        self.bytes_up = 0
        self.bytes_down = 0
        self.trace: list[TraceEntry] = []
        self.connections_total = 0
        self.nat_idle_timeout_s: float | None = None
        """Emulate a carrier NAT: a connection idle this long loses its mapping silently, and every
        later byte either way is dropped without a close or a reset (as a real one does)."""
        self.nat_drops = 0
        """Connections whose mapping expired."""
        self.link = link
        """The emulated link (RTT, bandwidth per direction) of connections opened from now on."""
        self.cut_done = asyncio.Event()
        """Set when a `cut_after` budget ran out and the connection was cut."""
        self.replaced = asyncio.Event()
        """Set when `replace_next_down_line` has replaced a line."""
        self.tap: Callable[[float, int, Direction, bytes], None] | None = None
        """Sees every delivered chunk (seconds since start, connection, direction, bytes): the raw
        exchange a failure report needs before anyone decides which peer is at fault."""
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._down_flowing = asyncio.Event()
        self._down_flowing.set()
        self._hold_marker: bytes | None = None
        self.held = asyncio.Event()
        """Set when `hold_down_after` saw its marker go up and began holding the server's bytes."""
        self._up_hold_marker: bytes | None = None
        self._up_flowing = asyncio.Event()
        self._up_flowing.set()
        self.held_up = asyncio.Event()
        """Set when `hold_up_at` saw its marker in the client's bytes and began holding them."""
        self._refusing = False
        self._cut_budget: dict[Direction, int | None] = {"up": None, "down": None}
        self._cut_rst = False
        self._line_rule: _LineRule | None = None
        self._t0 = time.monotonic()
        self._changed = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._t0 = time.monotonic()
        return self

    async def aclose(self) -> None:
        """Stop listening and cut whatever is still connected."""
        if self._server is not None:
            self._server.close()
        links = list(self._links.values())
        for link in links:
            link.abort()
        for link in links:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await link.done.wait()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- observation ---------------------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        return len(self._links)

    def reset_counters(self) -> None:
        """Zero the byte counters and clear the trace, to measure one phase of a test or bench."""
        self.bytes_up = 0
        self.bytes_down = 0
        self.trace.clear()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until `predicate()` holds; it is re-checked whenever the proxy's state changes."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_connections(self, n: int = 1, timeout_s: float = 10.0) -> None:
        """Wait until at least `n` connections have been accepted since the start."""
        await self.wait_for(lambda: self.connections_total >= n, timeout_s)

    async def wait_bytes(self, direction: Direction, n: int, timeout_s: float = 10.0) -> None:
        """Wait until at least `n` bytes went through in `direction`."""
        await self.wait_for(lambda: (self.bytes_up if direction == "up" else self.bytes_down) >= n, timeout_s)

    # -- faults --------------------------------------------------------------------------------

    def retarget(self, host: str, port: int) -> None:
        """Send new connections to another server (existing ones keep theirs)."""
        self.target_host, self.target_port = host, port

    def refuse(self, on: bool = True) -> None:
        """While on, new connections are accepted and closed at once, as by a server that is down."""
        self._refusing = on

    def pause(self) -> None:
        """Stop forwarding both ways (held, not lost): a stalled network without any close."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def hold_down_after(self, marker: bytes) -> None:
        """Arm a one-shot hold: once a client chunk containing `marker` has gone up, the server's
        bytes are held (not lost) until `release_down()`. A test can so change a mailbox on the
        server while the client waits for the answer to its SELECT of it."""
        self._hold_marker = marker
        self.held.clear()

    def release_down(self) -> None:
        self._hold_marker = None
        self._down_flowing.set()

    def hold_up_at(self, marker: bytes) -> None:
        """Arm a one-shot hold of the client's bytes: the chunk containing `marker` and all after it
        wait (not lost) until `release_up()`. A test can so make the server's news cross a command
        on the wire: it reaches the client after the command left it, before the server read it."""
        self._up_hold_marker = marker
        self.held_up.clear()

    def release_up(self) -> None:
        self._up_hold_marker = None
        self._up_flowing.set()

    def cut_after(self, *, up: int | None = None, down: int | None = None, rst: bool = False) -> None:
        """Arm a one-shot cut: once `up`/`down` more bytes went through that way, cut that connection.

        Exactly that many bytes are delivered; the rest of the chunk is dropped with the connection.
        `rst` makes the peers see a reset instead of a close.
        """
        self._cut_budget = {"up": up, "down": down}
        self._cut_rst = rst
        self.cut_done.clear()

    async def cut(self, *, rst: bool = False) -> None:
        """Cut every live connection now (both sides closed without flushing)."""
        links = list(self._links.values())
        for link in links:
            link.abort(rst)
        for link in links:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await link.done.wait()

    def inject_down(self, data: bytes) -> None:
        """Deliver `data` to every connected client as if the server had sent it.

        If a server line is half-forwarded, the bytes go in right after its end, so a whole
        injected line never splits a real one.
        """
        for link in self._links.values():
            if link.down_at_line_start:
                self._write_down(link, data, injected=True)
            else:
                link.pending_inject.append(data)

    def replace_next_down_line(
        self, data: bytes, *, startswith: bytes | None = None, contains: bytes | None = None
    ) -> None:
        """Replace the next whole server line (optionally the next one starting with `startswith`
        and holding `contains`) by `data`.

        `data` should end with CRLF unless the test wants to glue it to the next line. One-shot;
        `replaced` is set when it happened.
        """
        self._line_rule = _LineRule(data, startswith, contains)
        self.replaced.clear()

    # -- forwarding ----------------------------------------------------------------------------

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        conn = self.connections_total
        await self._notify()
        if self._refusing:
            client_writer.transport.abort()
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                server_reader, server_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
        except (OSError, TimeoutError):
            client_writer.transport.abort()
            return
        link = _Link(conn, client_reader, client_writer, server_reader, server_writer, profile=self.link)
        self._links[conn] = link
        try:
            async with asyncio.TaskGroup() as tg:
                link.pumps = [tg.create_task(self._pump(link, d)) for d in ("up", "down")]
        finally:
            link.abort()
            del self._links[conn]
            link.done.set()
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _pump(self, link: _Link, direction: Direction) -> None:
        reader = link.client_reader if direction == "up" else link.server_reader
        writer = link.server_writer if direction == "up" else link.client_writer
        try:
            if link.profile is None:
                while await self._deliver(link, direction, writer, await reader.read(self.chunk_bytes)):
                    pass
                return
            shaper = _Shaper(link.profile, direction)
            async with asyncio.TaskGroup() as tg:
                fill = tg.create_task(self._fill(link, reader, shaper))
                try:
                    while True:
                        taken, chunk = await shaper.get()
                        if not await self._deliver(link, direction, writer, chunk or b"", taken):
                            return
                finally:
                    fill.cancel()
        except (ConnectionError, OSError):
            link.abort()

    async def _fill(self, link: _Link, reader: asyncio.StreamReader, shaper: _Shaper) -> None:
        """Read from the sender into the emulated link as fast as its queue allows."""
        try:
            while True:
                await shaper.room()
                chunk = await reader.read(self.chunk_bytes)
                shaper.put(chunk or None)
                if not chunk:
                    return
        except (ConnectionError, OSError):
            link.abort()

    async def _deliver(
        self,
        link: _Link,
        direction: Direction,
        writer: asyncio.StreamWriter,
        chunk: bytes,
        taken: float | None = None,
    ) -> bool:
        """Hand one chunk read from a sender to the other side (b"": it closed); False when done."""
        if not chunk:
            if direction == "down" and link.line_buffer:
                await self._forward(link, direction, link.line_buffer)
                link.line_buffer = b""
            if writer.can_write_eof() and not link.aborted:
                writer.write_eof()
            return False
        await self._flowing.wait()
        if direction == "down":
            await self._down_flowing.wait()
        else:
            if self._up_hold_marker is not None and self._up_hold_marker in chunk:
                self._up_hold_marker = None
                self._up_flowing.clear()
                self.held_up.set()
            await self._up_flowing.wait()
        if link.aborted:
            return False
        if direction == "down" and (self._line_rule is not None or link.line_buffer):
            chunk = self._apply_line_rule(link, chunk)
            if not chunk:
                return True
        if not await self._forward(link, direction, chunk, taken):
            return False
        await writer.drain()
        return True

    def _apply_line_rule(self, link: _Link, chunk: bytes) -> bytes:
        """Hold back partial lines while a rule is armed; swap the first matching whole line."""
        data = link.line_buffer + chunk
        link.line_buffer = b""
        out = bytearray()
        pos = 0
        while self._line_rule is not None:
            end = data.find(b"\n", pos)
            if end < 0:
                link.line_buffer = data[pos:]
                return bytes(out)
            line = data[pos : end + 1]
            rule = self._line_rule
            if (rule.startswith is None or line.startswith(rule.startswith)) and (
                rule.contains is None or rule.contains in line
            ):
                out += rule.replacement
                self._line_rule = None
                self.replaced.set()
            else:
                out += line
            pos = end + 1
        out += data[pos:]
        return bytes(out)

    async def _forward(
        self, link: _Link, direction: Direction, chunk: bytes, taken: float | None = None
    ) -> bool:
        """Deliver `chunk`, honouring an armed cut; False once the link is cut."""
        now = time.monotonic()
        if (
            not link.blackholed
            and self.nat_idle_timeout_s is not None
            and now - link.last_activity >= self.nat_idle_timeout_s
        ):
            link.blackholed = True
            self.nat_drops += 1
        if link.blackholed:
            return True  # dropped on the floor; the sockets stay open
        link.last_activity = now
        budget = self._cut_budget[direction]
        cut_now = False
        if budget is not None:
            if len(chunk) >= budget:
                chunk = chunk[:budget]
                cut_now = True
                self._cut_budget[direction] = None
            else:
                self._cut_budget[direction] = budget - len(chunk)
        if direction == "up":
            if chunk:
                link.server_writer.write(chunk)
                self._record(link.conn, "up", len(chunk), injected=False, taken=taken)
                if self.tap is not None:
                    self.tap(time.monotonic() - self._t0, link.conn, "up", chunk)
                if self._hold_marker is not None and self._hold_marker in chunk:
                    self._hold_marker = None
                    self._down_flowing.clear()
                    self.held.set()
        elif chunk:
            self._write_down(link, chunk, injected=False, taken=taken)
        if cut_now:
            with contextlib.suppress(ConnectionError, OSError):
                writer = link.server_writer if direction == "up" else link.client_writer
                await writer.drain()
            link.abort(self._cut_rst)
            self.cut_done.set()
            await self._notify()
            return False
        await self._notify()
        return True

    def _write_down(self, link: _Link, data: bytes, *, injected: bool, taken: float | None = None) -> None:
        if link.aborted:
            return
        link.client_writer.write(data)
        self._record(link.conn, "down", len(data), injected=injected, taken=taken)
        if self.tap is not None:
            self.tap(time.monotonic() - self._t0, link.conn, "down", data)
        link.down_at_line_start = data.endswith(b"\n")
        if link.down_at_line_start and link.pending_inject:
            pending, link.pending_inject = link.pending_inject, []
            for extra in pending:
                self._write_down(link, extra, injected=True)

    def _record(
        self, conn: int, direction: Direction, nbytes: int, *, injected: bool, taken: float | None = None
    ) -> None:
        if direction == "up":
            self.bytes_up += nbytes
        else:
            self.bytes_down += nbytes
        t = time.monotonic() - self._t0
        taken_s = None if taken is None else taken - self._t0
        self.trace.append(TraceEntry(t, conn, direction, nbytes, injected, taken_s))


class ThreadedFaultProxy(Managed):
    """A `FaultProxy` on its own event loop in a background thread, for synchronous code.

    For benches and sync tests (imaplib, a daemon in a subprocess) that want on-the-wire byte
    counts or faults without an event loop of their own:

        with ThreadedFaultProxy(dv.host, dv.port) as px:
            imaplib.IMAP4(px.host, px.port) ...
            px.bytes_down, px.trace; px.cut(); px.call(lambda p: p.cut_after(down=100))
    """

    def __init__(self, target_host: str, target_port: int, **kwargs: Any) -> None:
        self._args = (target_host, target_port)
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._proxy: FaultProxy | None = None

    @property
    def proxy(self) -> FaultProxy:
        if self._proxy is None:
            raise RuntimeError("ThreadedFaultProxy is not started")
        return self._proxy

    def start(self) -> Self:
        self._thread.start()

        async def make() -> FaultProxy:
            return await FaultProxy(*self._args, **self._kwargs).start()

        self._proxy = asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=30)
        return self

    def close(self) -> None:
        if self._proxy is not None:
            asyncio.run_coroutine_threadsafe(self._proxy.aclose(), self._loop).result(timeout=30)
            self._proxy = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        if not self._loop.is_running():
            self._loop.close()

    def call(self, fn: Callable[[FaultProxy], T]) -> T:
        """Run `fn(proxy)` on the proxy's loop and return its result (for the non-async controls)."""

        async def run() -> T:
            return fn(self.proxy)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def bytes_up(self) -> int:
        return self.proxy.bytes_up

    @property
    def bytes_down(self) -> int:
        return self.proxy.bytes_down

    @property
    def trace(self) -> list[TraceEntry]:
        return self.call(lambda p: list(p.trace))

    def reset_counters(self) -> None:
        self.call(lambda p: p.reset_counters())

    def cut(self, *, rst: bool = False) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.cut(rst=rst), self._loop).result(timeout=30)
