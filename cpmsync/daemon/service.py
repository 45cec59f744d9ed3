"""The daemon process: IMAP session loop + MQTT publisher + sd_notify watchdog in one TaskGroup.

The session loop connects, logs in, negotiates (COMPRESS, ENABLE QRESYNC), runs a catch-up sync
and then waits for changes; any failure (cut, timeout, malformed response, NO to a command) is
logged once and followed by a reconnect after an exponential backoff with jitter, so a bad
server never turns into a crash loop. SIGTERM/SIGINT finish the current folder, publish offline
and LOGOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from cpmsync import native
from cpmsync.daemon import sdnotify
from cpmsync.daemon.actions import ActionInbox, ActionQueue
from cpmsync.daemon.cache import Cache, open_cache
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.imap_client import ImapClient, ImapCommandError, ImapError
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.push import NOTIFY_SET, PushLoop, push_mode
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync_engine import SyncEngine
from cpmsync.event_wait import wait_event
from cpmsync.logs import kv

__all__ = [
    "USED_CAPABILITIES",
    "Backoff",
    "ImapSession",
    "account_server",
    "capabilities_in_use",
    "connect",
    "ensure_same_account",
    "run_daemon",
]

log = logging.getLogger("cpmsync.daemon")

_STOP_GRACE_S = 15.0


class Backoff:
    """Exponential backoff with full jitter between min_s and max_s."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max_s
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_s(self) -> float:
        cap = min(self.max_s, self.min_s * 2**self.attempt)
        self.attempt += 1
        return random.uniform(self.min_s, max(self.min_s, cap))


def connect(settings: DaemonSettings, *, conn_id: str | None = None) -> ImapClient:
    """An ImapClient from the `[imap]` settings (not yet connected: use `async with`)."""
    cfg = settings.imap
    return ImapClient(
        cfg.host,
        cfg.effective_port,
        tls=cfg.tls,
        ca_file=cfg.ca_file,
        allow_plaintext=cfg.allow_plaintext,
        command_timeout_s=cfg.command_timeout_s,
        connect_timeout_s=cfg.connect_timeout_s,
        trace=settings.trace.enabled,
        conn_id=conn_id,
    )


async def setup(imap: ImapClient, settings: DaemonSettings) -> None:
    """Log in, then ENABLE QRESYNC (or CONDSTORE) and COMPRESS (it cuts UNI bytes) in one round trip."""
    cfg = settings.imap
    password = cfg.secret() or ""
    await imap.login(cfg.username, password, mechanism=cfg.auth)
    enable = ("QRESYNC",) if imap.has("QRESYNC") else ("CONDSTORE",) if imap.has("CONDSTORE") else ()
    await imap.enable_and_compress(enable, compress=cfg.compress)


# The extensions the daemon can make use of, in the order the status lists them.
USED_CAPABILITIES = (
    "LIST-CHANGEDSINCE",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "NOTIFY",
    "IDLE",
    "COMPRESS=DEFLATE",
)


def capabilities_in_use(imap: ImapClient) -> list[str]:
    """What the status publishes: the extensions this session uses, not the server's whole list."""
    condstore = "CONDSTORE" in imap.enabled or "QRESYNC" in imap.enabled or imap.has("CONDSTORE")
    mode = push_mode(imap)
    used = {
        "LIST-CHANGEDSINCE": condstore and imap.has("LIST-CHANGEDSINCE"),
        "LIST-STATUS": imap.has("LIST-STATUS"),
        "CONDSTORE": condstore,
        "QRESYNC": "QRESYNC" in imap.enabled,
        "NOTIFY": mode == "notify",
        "IDLE": mode in ("notify", "idle"),
        "COMPRESS=DEFLATE": imap.compressed,
    }
    return [c for c in USED_CAPABILITIES if used[c]]


def account_server(settings: DaemonSettings) -> str:
    """Which server account the cache mirrors, as recorded in its account row."""
    cfg = settings.imap
    return f"imap://{quote(cfg.username, safe='')}@{cfg.host}:{cfg.effective_port}"


def ensure_same_account(cache: Cache, settings: DaemonSettings) -> None:
    """A cache made for another imap host/username is emptied (one log line): its folders and
    watermark belong to that account, and LIST-CHANGEDSINCE on the new one would never replace them.
    """
    want = account_server(settings)
    have = cache.account().server
    if have == want:
        return
    legacy = f"{settings.imap.host}:{settings.imap.effective_port}"  # recorded before usernames were
    if have is None or have == legacy:
        cache.update_account(server=want)  # before any event: event ids include it
        return
    dropped = cache.forget_account(server=want)
    log.warning(
        "cache rebuilt: it mirrored another IMAP account, a full resync from the server follows",
        extra=kv(cached=have, configured=want, folders_removed=dropped),
    )


class ImapSession:
    """Keeps one IMAP session alive (reconnecting) and the cache in sync over it."""

    def __init__(
        self,
        settings: DaemonSettings,
        cache: Cache,
        publisher: Publisher | None,
        *,
        forced_strategy: DiscoveryStrategy | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.publisher = publisher
        self.forced_strategy = forced_strategy
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.synced = asyncio.Event()  # set after every successful catch-up (tests, benches)
        self.connections = 0
        self.errors = 0
        self.backoff = Backoff(settings.imap.reconnect_min_s, settings.imap.reconnect_max_s)
        self._went_online = False  # the current session finished its catch-up
        self._auth_reported = False
        self._cache_was_synced = False
        self.engine: SyncEngine | None = None
        # Apps' actions (daemon/actions.py): accepted on the publisher's MQTT connection, applied here.
        self.actions = ActionQueue(cache, settings) if settings.actions.enabled else None
        if self.actions is not None and publisher is not None:
            publisher.inbox = ActionInbox(self.actions, ack_timeout_s=settings.mqtt.ack_timeout_s)

    def _status(self, state: str | None = None, **kw: object) -> None:
        if self.publisher is not None:
            self.publisher.set_status(state, **kw)  # type: ignore[arg-type]

    async def run(self) -> None:
        cfg = self.settings.imap
        ensure_same_account(self.cache, self.settings)
        self._cache_was_synced = self.cache.watermark > 0
        backoff = self.backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        while not self.stop.is_set():
            self._went_online = False
            news = self.cache.events_committed
            try:
                await self._session()
                return
            except ImapCommandError as e:
                err = f"{type(e).__name__}: {e}"
                auth_failed = e.code == "AUTHENTICATIONFAILED"
            except (ImapError, OSError) as e:
                err, auth_failed = f"{type(e).__name__}: {e}", False
            except Exception as e:
                log.exception("unexpected error in the IMAP session")
                err, auth_failed = f"{type(e).__name__}: {e}", False
            self.errors += 1
            if self._went_online or self.cache.events_committed > news:
                # That session synced, or delivered news before it failed: the server works, this
                # loss is a new incident. Without the reset a server that crashes now and then
                # (Dovecot 2.3.19 under folder churn, docs/peers.md) pushed the retry towards
                # reconnect_max_s, minutes of silence; so did a link cut every few seconds, each
                # cut ending a catch-up that had committed part of its folders (the cut soak on two
                # msgstore instances: waits of 67 s and 134 s). A session that got nowhere (login
                # refused, the same failure before any news) still backs off.
                backoff.reset()
            if auth_failed:
                # Not transient: retrying in 1-4 s only hammers the server (and may lock the
                # account). Say what to fix once, then retry at the slowest rate.
                delay = cfg.reconnect_max_s
                if not self._auth_reported:
                    self._auth_reported = True
                    log.error(
                        "IMAP login refused: check the password (imap.password_file or "
                        "CPMSYNC_IMAP__PASSWORD) and imap.username",
                        extra=kv(username=cfg.username, server=cfg.host, retry_s=delay),
                    )
                else:
                    log.info("IMAP login refused again", extra=kv(retry_s=delay))
            else:
                delay = backoff.next_s()
                log.warning("IMAP session ended, reconnecting", extra=kv(error=err, retry_s=round(delay, 2)))
            # Not "online": an app must not show a live link while the message store is unreachable.
            self._status("disconnected", capabilities=[], last_error=err)
            await wait_event(self.stop, delay)

    async def _session(self) -> None:
        self.connections += 1
        conn_id = f"{self.settings.account.id}-{datetime.now(UTC):%Y%m%dT%H%M%S.%f}-{self.connections}"
        async with connect(self.settings, conn_id=conn_id) as imap:
            await setup(imap, self.settings)
            self._auth_reported = False  # logged in: a later refusal is news again
            caps = capabilities_in_use(imap)
            engine = SyncEngine(
                imap, self.cache, self.settings, stop=self.stop, forced_strategy=self.forced_strategy
            )
            self.engine = engine
            self._status("syncing", capabilities=caps)
            if push_mode(imap) == "notify":
                # Before the catch-up: a change made during or right after it is then notified.
                await imap.notify_set(NOTIFY_SET)
            # Names-only LIST after each reconnect, and after a restart on an existing cache unless
            # the server announces gone folders itself: else folders deleted or renamed while the
            # daemon was down stay in the cache until names_list_interval_s (or forever).
            restart = self._cache_was_synced and not self.settings.imap.changedsince_reports_gone
            if self.actions is not None and self.actions.pending():
                # Before the catch-up: it would otherwise show the server's state of a folder the
                # app already changed (a flicker back and forth), and the actions ride this wake.
                await self.actions.apply(imap, engine)
            result = await engine.catch_up(names_check=self.connections > 1 or restart)
            self.cache.update_account(
                server=account_server(self.settings),
                capabilities=caps,
                strategy=result.strategy,
            )
            if result.interrupted:
                # Stopping: no "done", no push loop; the next start resumes the pending folders.
                log.info(
                    "catch-up sync interrupted",
                    extra=kv(
                        strategy=result.strategy, folders_done=result.folders, folders_pending=result.pending
                    ),
                )
                await imap.logout()
                return
            log.info(
                "catch-up sync done",
                extra=kv(
                    strategy=result.strategy,
                    folders=result.folders,
                    wire_in=result.bytes.wire_in,
                    wire_out=result.bytes.wire_out,
                    mode=push_mode(imap),
                ),
            )
            self._status("online", strategy=result.strategy, last_sync=datetime.now(UTC), last_error=None)
            self._went_online = True
            if not self.ready.is_set():
                self.ready.set()
                sdnotify.notify("READY=1", "STATUS=synced")
            self.synced.set()
            handoff = self.publisher.caught_up if self.publisher is not None else None
            loop = PushLoop(engine, actions=self.actions, handoff=handoff)
            await loop.run()
            await imap.logout()


async def _when_ready(session: ImapSession, on_ready: Callable[[], None] | None) -> None:
    await session.ready.wait()
    if on_ready is not None:
        on_ready()


async def run_daemon(
    settings: DaemonSettings,
    *,
    install_signals: bool = True,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """The whole service; returns after SIGTERM/SIGINT or once `stop` is set.

    `on_ready` is called after the first sync (when READY=1 goes to systemd): for an embedding
    program (the demo) that owns the signals itself (install_signals=False).
    """
    cache = open_cache(settings)
    publisher = Publisher(settings.mqtt, settings.account.id, cache)
    session = ImapSession(settings, cache, publisher)
    if stop is not None:
        session.stop = stop
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, session.stop.set)
    log.info(
        "daemon starting",
        extra=kv(
            account=settings.account.id,
            imap=settings.imap.host,
            cache=str(settings.cache.path),
            build=native.summary(),
        ),
    )
    try:
        async with asyncio.TaskGroup() as tg:
            pub = tg.create_task(publisher.run(), name="mqtt-publisher")
            sess = tg.create_task(session.run(), name="imap-session")
            wd = tg.create_task(sdnotify.watchdog_loop(), name="sd-watchdog")
            stopper = tg.create_task(session.stop.wait())
            ready = tg.create_task(_when_ready(session, on_ready))
            await asyncio.wait({sess, stopper}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            session.stop.set()
            sdnotify.notify("STOPPING=1")
            log.info("stopping")
            try:
                # Finish the current folder (or let its transaction roll back), then LOGOUT.
                async with asyncio.timeout(_STOP_GRACE_S):
                    await asyncio.shield(sess)
            except TimeoutError:
                sess.cancel()
            await publisher.close()
            wd.cancel()
            del pub
    finally:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        cache.close()
        log.info("stopped")
