"""The sync engine against a real Dovecot (CONDSTORE QRESYNC LIST-STATUS NOTIFY COMPRESS) and a
real Mosquitto: a change by another IMAP client reaches the cache and the MQTT events; after
random change sequences the cache equals the server and the events alone rebuild that state."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import *  # noqa: F403  (the shared daemon test helpers)
from imapclient import IMAPClient

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from tests.support import MosquittoBroker

pytestmark = pytest.mark.dovecot


def _other_client(acct: Any) -> IMAPClient:
    return other_client(acct.host, acct.port, acct.user, acct.password)


async def test_change_by_another_client_reaches_cache_and_mqtt(
    dovecot_account: Any, broker: MosquittoBroker, tmp_path: Path
) -> None:
    acct = dovecot_account
    seed_small(acct.host, acct.port, acct.user, acct.password, 4, 2, 0)
    settings = daemon_settings(acct.host, acct.port, acct.user, acct.password, broker.port, tmp_path)
    col = Collector(broker.port, [f"cpm/{acct.user}/#"], client_id=f"col-{acct.user}")
    async with col.running():
        async with running_daemon(settings) as (session, cache):
            assert session.engine is not None and session.engine.imap.compressed
            c = _other_client(acct)
            c.append("INBOX", b"From: Ann <ann@example.org>\r\nSubject: lunch?\r\n\r\nat noon\r\n")
            c.logout()
            await wait_until(lambda: any(m.subject == "lunch?" for m in cache.messages("INBOX")))
            await col.wait_until(
                lambda ms: any(
                    m.topic.endswith("/events") and m.json and m.json.get("subject") == "lunch?" for m in ms
                )
            )
            ev = next(e for e in col.events() if e.get("subject") == "lunch?")
            assert ev["kind"] == "message_added" and ev["folder"] == "INBOX"
            assert ev["from"] == "Ann <ann@example.org>" and ev["preview"] == "at noon"
            runs = cache.runs()
            assert runs[-1].strategy == "list-status"  # first sync: Dovecot offers LIST-STATUS
            assert len(runs) >= 2  # then a sync NOTIFY triggered (no poll is due for 300 s)
            assert all(r.wire_bytes_in < r.bytes_in for r in runs if r.bytes_in > 2000)  # COMPRESS


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_cache_equals_server(
    dovecot_account: Any, broker: MosquittoBroker, tmp_path: Path, seed: int
) -> None:
    acct = dovecot_account
    seed_small(acct.host, acct.port, acct.user, acct.password, 5, 3, seed)
    settings = daemon_settings(
        # Dovecot 2.3.19's NOTIFY drops every event around a CREATE followed by a RENAME by another
        # client (docs/peers.md); the daemon's optional NOTIFY safety poll, shortened here.
        acct.host,
        acct.port,
        acct.user,
        acct.password,
        broker.port,
        tmp_path,
        notify_poll_interval_s=2,
    )
    col = Collector(broker.port, [f"cpm/{acct.user}/#"], client_id=f"col-{acct.user}")
    rng = random.Random(seed)

    server = state_of(acct)

    async with col.running():
        async with running_daemon(settings) as (_session, cache):
            for _round in range(3):
                c = _other_client(acct)
                await asyncio.to_thread(random_changes, c, rng, 15)
                c.logout()
                final = await wait_equal(cache, server)
            await wait_replay(col, final)


@pytest.mark.parametrize(
    "strategy", [DiscoveryStrategy.LIST_STATUS, DiscoveryStrategy.LIST_STATUS_PER_FOLDER]
)
async def test_catch_up_after_offline_changes(
    dovecot_account: Any, broker: MosquittoBroker, tmp_path: Path, strategy: DiscoveryStrategy
) -> None:
    """Changes made while the daemon was stopped are found by the next catch-up discovery."""
    acct = dovecot_account
    seed_small(acct.host, acct.port, acct.user, acct.password, 6, 2, 7)
    settings = daemon_settings(acct.host, acct.port, acct.user, acct.password, broker.port, tmp_path)

    server = state_of(acct)

    async with running_daemon(settings, forced_strategy=strategy) as (_s, cache):
        await wait_equal(cache, server)
    c = _other_client(acct)
    random_changes(c, random.Random(11), 20)
    c.logout()
    async with running_daemon(settings, forced_strategy=strategy) as (_s, cache):
        await wait_equal(cache, server)
        assert cache.runs()[0].strategy in (strategy, "notify")
