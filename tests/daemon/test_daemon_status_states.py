"""What an app sees on the retained status topic while the message store is down, comes back and
goes away again: never "online" without an IMAP session, and only the extensions actually used.
The TCP proxy in front of Dovecot is there only to refuse and cut connections on demand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import daemon_settings

from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import USED_CAPABILITIES, ImapSession
from cpmsync.models.events import StatusPayload
from tests.support import MosquittoBroker

pytestmark = pytest.mark.dovecot


def _statuses(col: Collector, account: str) -> list[StatusPayload]:
    return [
        StatusPayload.model_validate_json(m.payload)
        for m in col.messages
        if m.topic == f"cpm/{account}/status" and m.payload
    ]


async def test_status_disconnected_while_imap_is_down_and_capabilities_in_use(
    dovecot_account: Any, fault_proxy_factory: Any, broker: MosquittoBroker, tmp_path: Path
) -> None:
    acct = dovecot_account
    px = await fault_proxy_factory(acct.host, acct.port)
    px.refuse(True)
    settings = daemon_settings(px.host, px.port, acct.user, acct.password, broker.port, tmp_path)
    cache = open_cache(settings)
    publisher = Publisher(settings.mqtt, settings.account.id, cache)
    session = ImapSession(settings, cache, publisher)
    col = Collector(broker.port, [f"cpm/{acct.user}/status"], client_id="status-states")

    def last() -> StatusPayload | None:
        got = _statuses(col, acct.user)
        return got[-1] if got else None

    try:
        async with asyncio.TaskGroup() as tg:
            sub = tg.create_task(col.run())
            await col.subscribed.wait()
            tg.create_task(publisher.run())
            run = tg.create_task(session.run())
            await col.wait_until(lambda m: (s := last()) is not None and s.state == "disconnected")
            down = last()
            assert down is not None and down.last_error and down.capabilities == []
            assert all(s.state != "online" for s in _statuses(col, acct.user))

            px.refuse(False)
            await col.wait_until(lambda m: (s := last()) is not None and s.state == "online")
            up = last()
            assert up is not None and up.last_error is None
            assert set(up.capabilities) <= set(USED_CAPABILITIES)
            assert {"QRESYNC", "NOTIFY", "IDLE"} <= set(up.capabilities)  # Dovecot 2.3 offers them
            assert "IMAP4rev1" not in up.capabilities and "ENABLE" not in up.capabilities

            px.refuse(True)
            await px.cut()
            await col.wait_until(lambda m: (s := last()) is not None and s.state == "disconnected")
            session.stop.set()
            await run
            await publisher.close()
            sub.cancel()
    finally:
        cache.close()
