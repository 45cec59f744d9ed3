"""The asyncio IMAP server of the reference CPM Message Store: listeners, limits, clean shutdown.

`ImapServer.serve()` owns one TaskGroup with every session task in it, so nothing outlives the
server; `stop()` makes it stop accepting, lets each session finish its current command, say BYE
and close, then returns. `serve_forever(settings)` is what `cpmsync msgstore serve` runs.

    server = ImapServer(settings, store)
    task = asyncio.create_task(server.serve())   # or: await server.serve()
    await server.ready.wait(); server.port        # first plain listener's port
    server.stop(); await task
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cpmsync.config import ConfigError
from cpmsync.event_wait import wait_event
from cpmsync.logs import kv
from cpmsync.msgstore.connection_limits import SharedUserConnections, UserConnections, user_connections
from cpmsync.msgstore.session_base import SessionProtocol
from cpmsync.msgstore.settings import MsgstoreSettings, parse_hostport
from cpmsync.msgstore.store import MessageStore
from cpmsync.msgstore.store_calls import StoreWorkers

if TYPE_CHECKING:
    from cpmsync.msgstore.session import Session

__all__ = ["SHUTDOWN_GRACE_S", "ImapServer", "ServerContext", "make_ssl_context", "serve_forever"]

log = logging.getLogger("cpmsync.msgstore.server")

# On stop, how long a session may take to finish its command and say BYE before it is cut.
SHUTDOWN_GRACE_S = 10.0


def make_ssl_context(settings: MsgstoreSettings) -> ssl.SSLContext | None:
    """Server TLS context from [server] tls_cert_file / tls_key_file, or None when not configured."""
    srv = settings.server
    if srv.tls_cert_file is None or srv.tls_key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(srv.tls_cert_file), str(srv.tls_key_file))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"server.tls_cert_file/tls_key_file: cannot load {srv.tls_cert_file}, {srv.tls_key_file}: {e}"
        ) from None
    return ctx


@dataclass
class ServerContext:
    """What every session shares: settings, store, TLS context and the connection counters."""

    settings: MsgstoreSettings
    store: MessageStore
    ssl_context: ssl.SSLContext | None
    per_user: UserConnections
    per_address: Counter[str] = field(default_factory=Counter)
    store_calls: StoreWorkers = field(default_factory=StoreWorkers)  # the sessions' store calls

    async def claim_user(self, user: str) -> bool:
        """A connection slot for `user` (across instances on PostgreSQL: connection_limits.py)."""
        return await self.per_user.claim(user)

    async def release_user(self, user: str) -> None:
        await self.per_user.release(user)

    def address_over_limit(self, host: str) -> bool:
        return self.per_address[host] > self.settings.limits.max_connections_per_address


class ImapServer:
    """Listens on [server] listen (plain, STARTTLS) and tls_listen (implicit TLS)."""

    def __init__(self, settings: MsgstoreSettings, store: MessageStore) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ServerContext(
            settings,
            store,
            make_ssl_context(settings),
            user_connections(store, settings.limits.max_connections_per_user),
        )
        self.ready = asyncio.Event()
        self.addresses: list[tuple[str, int]] = []
        self.tls_addresses: list[tuple[str, int]] = []
        self._stop = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._sessions: set[Session] = set()
        self._no_sessions = asyncio.Event()
        self._ended_held_peak = 0

    @property
    def port(self) -> int:
        """The first plain listener's port (useful with port 0)."""
        return self.addresses[0][1]

    @property
    def tls_port(self) -> int:
        return self.tls_addresses[0][1]

    def stop(self) -> None:
        """Ask `serve()` to finish (safe to call from a signal handler on the loop)."""
        self._stop.set()

    async def serve(self) -> None:
        """Run until `stop()`; sessions finish their command and get BYE.

        A listener that cannot bind raises its OSError (not wrapped in an ExceptionGroup).
        """
        try:
            await self._serve()
        except ExceptionGroup as eg:
            if len(eg.exceptions) == 1 and isinstance(eg.exceptions[0], OSError):
                raise eg.exceptions[0] from None
            raise
        finally:  # every session is over: no store call can come any more
            await self.ctx.store_calls.aclose()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            listeners: list[asyncio.Server] = []
            try:
                for hp in self.settings.server.listen:
                    host, port = parse_hostport(hp)
                    srv = await loop.create_server(lambda: SessionProtocol(self._accept_plain), host, port)
                    listeners.append(srv)
                    self.addresses += [s.getsockname()[:2] for s in srv.sockets]
                for hp in self.settings.server.tls_listen:
                    host, port = parse_hostport(hp)
                    srv = await loop.create_server(
                        lambda: SessionProtocol(self._accept_tls),
                        host,
                        port,
                        ssl=self.ctx.ssl_context,
                        ssl_handshake_timeout=30,
                    )
                    listeners.append(srv)
                    self.tls_addresses += [s.getsockname()[:2] for s in srv.sockets]
                urls = [f"imap://{h}:{p}" for h, p in self.addresses]
                urls += [f"imaps://{h}:{p}" for h, p in self.tls_addresses]
                log.info(
                    "msgstore ready on %s",
                    " ".join(urls),
                    extra=kv(listen=urls, db=self.store.url, capabilities=len(self._caps())),
                )
                self._warn_unusable_listeners()
                self.ready.set()
                await self._stop.wait()
            finally:
                for srv in listeners:
                    srv.close()
                for s in list(self._sessions):
                    s.request_shutdown()
                if self._sessions:
                    tg.create_task(self._abort_stragglers())
        log.info("msgstore stopped")

    async def _abort_stragglers(self) -> None:
        """A client that stopped reading blocks its session in drain(); after the grace period
        its connection is aborted so shutdown always ends."""
        if await wait_event(self._no_sessions, SHUTDOWN_GRACE_S):
            return
        for s in list(self._sessions):
            log.warning("aborting a session that did not finish in time", extra=kv(session=s.id))
            s.abort()

    def _warn_unusable_listeners(self) -> None:
        """LOGINDISABLED on plaintext non-loopback links: say so once if nothing lets clients log in."""
        srv = self.settings.server
        if srv.allow_plaintext_login_non_loopback or (srv.starttls and self.ctx.ssl_context is not None):
            return
        for host, port in self.addresses:
            if not ipaddress.ip_address(host).is_loopback:
                log.warning(
                    "clients on %s:%d cannot log in: plaintext login is disabled off loopback and no "
                    "STARTTLS certificate is configured (set [server] tls_cert_file/tls_key_file, "
                    "or allow_plaintext_login_non_loopback = true)",
                    host,
                    port,
                )

    def _caps(self) -> list[str]:
        return self.settings.extensions.capabilities()

    def _accept_plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(reader, writer, tls=False)

    def _accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(reader, writer, tls=True)

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool) -> None:
        if self._tg is None or self._stop.is_set():
            writer.close()
            return
        self._tg.create_task(self._run_session(reader, writer, tls))

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: bool
    ) -> None:
        from cpmsync.msgstore.session import Session

        session = Session(self.ctx, reader, writer, tls=tls)
        host = session.peer_host
        self.ctx.per_address[host] += 1
        self._sessions.add(session)
        self._no_sessions.clear()
        try:
            await session.run()
        except Exception:
            log.exception("session crashed", extra=kv(session=session.id))
        finally:
            self._ended_held_peak = max(self._ended_held_peak, session.held_peak)
            self._sessions.discard(session)
            if not self._sessions:
                self._no_sessions.set()
            self.ctx.per_address[host] -= 1
            if self.ctx.per_address[host] <= 0:
                del self.ctx.per_address[host]

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def held_bytes_peak(self) -> int:
        """The most bytes one session has held for its client so far (commands read ahead,
        replies not taken): bounded by output backpressure whatever the client does."""
        return max([self._ended_held_peak, *(s.held_peak for s in self._sessions)])


def serve_forever(settings: MsgstoreSettings) -> None:
    """Open the store, serve until SIGTERM/SIGINT, close cleanly (the CLI's `serve`). On PostgreSQL
    the instance also listens for the changes of other instances on the same database."""
    from cpmsync.msgstore.memory import return_large_blocks_to_os

    return_large_blocks_to_os()  # before any worker thread has an arena
    store = MessageStore.from_settings(settings)

    async def main() -> None:
        server = ImapServer(settings, store)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        if not store.is_postgresql:
            await server.serve()
            return
        # Several instances may share this database: hear their changes (pg_listener.py).
        from cpmsync.msgstore.pg_listener import PgChangeBus

        async with PgChangeBus(store).running():
            if isinstance(server.ctx.per_user, SharedUserConnections):
                try:
                    gone = await server.ctx.per_user.forget_dead_instances()
                except Exception as e:  # only housekeeping: dead instances' rows do not count
                    log.warning("cannot clear connection counts of stopped instances", extra=kv(error=str(e)))
                else:
                    if gone:
                        log.info("connection counts of stopped instances cleared", extra=kv(rows=gone))
            await server.serve()

    try:
        asyncio.run(main())
    finally:
        store.close()
