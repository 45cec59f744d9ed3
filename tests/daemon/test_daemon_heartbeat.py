"""The adaptive heartbeat on a real connection: a NAT that silently drops idle mappings.

The fault proxy plays the carrier NAT (no real one runs here): a connection idle for
`nat_idle_timeout_s` loses its mapping, and every later byte vanishes without a close or a reset.
Time is scaled down (a 3 s NAT, heartbeats of seconds) so the daemon learns within the test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon_mqtt_helpers import Collector
from daemon_sync_helpers import (
    LocalAccount,
    append_uid,
    daemon_settings,
    other_client,
    running_daemon,
    wait_until,
)

from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings
from tests.support import FaultProxy, MosquittoBroker

NAT_S = 3.0
HEARTBEAT = {
    "initial_s": 1.0,
    "min_s": 0.5,
    "max_s": 12.0,
    "step_s": 1.5,
    "reply_timeout_s": 1.0,
    "network_id": "test-cell",
}


async def test_daemon_learns_the_nat_timeout_and_loses_no_change(
    broker: MosquittoBroker, tmp_path: Path, fault_proxy_factory: Any
) -> None:
    with ThreadServer(make_settings()) as srv:
        c = other_client("127.0.0.1", srv.port, "alice", USERS["alice"])
        c.create_folder("Default")
        c.logout()
        px: FaultProxy = await fault_proxy_factory("127.0.0.1", srv.port)
        px.nat_idle_timeout_s = NAT_S
        settings = daemon_settings(px.host, px.port, "alice", USERS["alice"], broker.port, tmp_path)
        settings = settings.model_copy(update={"heartbeat": settings.heartbeat.model_copy(update=HEARTBEAT)})
        col = Collector(broker.port, ["cpm/alice/#"], client_id="col-heartbeat")
        async with col.running():
            async with running_daemon(settings) as (session, cache):

                def learned() -> bool:
                    st = cache.heartbeat_state("test-cell")
                    return st is not None and st.bad_s is not None and st.probe_s == st.good_s

                await wait_until(learned, timeout_s=60)
                st = cache.heartbeat_state("test-cell")
                assert st is not None and st.bad_s is not None
                # It found the NAT (a heartbeat at or past 3 s was lost) and settled below it.
                assert NAT_S <= st.bad_s < NAT_S + HEARTBEAT["step_s"] + 1
                assert NAT_S - 1.0 <= st.good_s < NAT_S
                assert px.nat_drops >= 1
                await wait_until(lambda: session.connections >= 2)  # detected, and reconnected
                # Settled: the connection now outlives the NAT, and a change is pushed at once.
                drops = px.nat_drops
                await asyncio.sleep(3 * NAT_S)
                assert px.nat_drops == drops
                alice = LocalAccount(srv.port, password=USERS["alice"])
                uid = await asyncio.to_thread(append_uid, alice, "Default", "after learning")
                await col.wait_until(
                    lambda _m: any(e["kind"] == "message_added" and uid in e["uids"] for e in col.events())
                )
