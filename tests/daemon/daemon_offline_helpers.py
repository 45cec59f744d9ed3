"""Helpers for "changes made while the daemon was down" tests: run the daemon until its first
sync is done, stop it, change the server with another client, run it again.

The MQTT side points at a port nobody listens on, so every event the daemon produced stays in
its outbox: `outbox_events` reads them back in order, as an app would receive them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon_sync_helpers import WAIT_S, cache_state, daemon_settings, running_daemon, server_state, wait_equal

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.settings import DaemonSettings
from tests.support import free_port

State = dict[str, dict[int, frozenset[str]]]

__all__ = ["WAIT_S", "offline_settings", "outbox_events", "sync_once", "sync_until_equal"]


def offline_settings(port: int, user: str, password: str, tmp: Path, **imap: Any) -> DaemonSettings:
    """Daemon settings for a msgstore/Dovecot on 127.0.0.1:port with no MQTT broker answering."""
    s = daemon_settings("127.0.0.1", port, user, password, free_port(), tmp, **imap)
    return s.model_copy(update={"mqtt": s.mqtt.model_copy(update={"close_timeout_s": 0.2})})


async def sync_once(settings: DaemonSettings) -> State:
    """Start the daemon, wait for its first sync (catch-up) to finish, stop it; the cache state."""
    async with running_daemon(settings) as (_session, cache):
        return cache_state(cache)


async def sync_until_equal(settings: DaemonSettings, port: int, user: str, password: str) -> State:
    """Start the daemon and wait until its cache equals the server (fails with the diff)."""
    async with running_daemon(settings) as (_session, cache):
        return await wait_equal(cache, lambda: server_state("127.0.0.1", port, user, password))


def outbox_events(settings: DaemonSettings) -> list[dict[str, Any]]:
    """Every event the daemon queued for MQTT so far, in publish order."""
    cache = Cache.open(settings.cache.path, settings.account.id, upgrade=False)
    try:
        out = []
        for item in cache.outbox_batch(10**9):
            kind, _folder = cache.topics.parse(item.topic)
            if kind == "events":
                out.append(json.loads(item.payload))
        return out
    finally:
        cache.close()
