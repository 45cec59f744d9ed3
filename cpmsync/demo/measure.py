"""The end-of-run table: one catch-up sync per discovery strategy, measured on the live msgstore.

All three start from the same point: a copy of the daemon's cache taken right after its first
sync, before the change generator began (so the watermark is from before the run). Each uses a
fresh connection and the daemon's own SyncEngine with the strategy forced, so the catch-up
(discovery + syncing the folders that changed) is exactly what the daemon would do after a
reconnect. Bytes are counted by the client at the IMAP layer and on the socket (after COMPRESS).
The simulator then prices each catch-up's byte trace on a radio profile.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.discovery import discover
from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.service import connect, setup
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync_engine import SyncEngine

__all__ = [
    "STRATEGIES",
    "CatchupMeasurement",
    "EnergyEstimate",
    "energy_per_day",
    "measure_catchup",
    "predict_discovery_bytes",
    "snapshot_cache",
]

STRATEGIES = tuple(DiscoveryStrategy)


def snapshot_cache(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite cache (the backup API copes with WAL and writers)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


@dataclass(frozen=True)
class CatchupMeasurement:
    strategy: DiscoveryStrategy
    imap_bytes_in: int
    imap_bytes_out: int
    wire_bytes_in: int
    wire_bytes_out: int
    folders_synced: int
    seconds: float
    discovery_imap_bytes: int  # the discovery step alone (LIST / LIST-STATUS / LIST + STATUS), both ways
    discovery_wire_bytes: int
    trace: tuple[tuple[float, str, int], ...]  # (t_s from start, "in"|"out", socket bytes)

    @property
    def imap_bytes(self) -> int:
        return self.imap_bytes_in + self.imap_bytes_out

    @property
    def wire_bytes(self) -> int:
        return self.wire_bytes_in + self.wire_bytes_out

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        del d["trace"]
        d["label"] = self.strategy.label
        d["imap_bytes"] = self.imap_bytes
        d["wire_bytes"] = self.wire_bytes
        return d


async def measure_catchup(
    settings: DaemonSettings, snapshot: Path, strategy: DiscoveryStrategy, workdir: Path
) -> CatchupMeasurement:
    """Copy the snapshot, connect afresh, run one catch-up with `strategy` forced."""
    path = workdir / f"catchup-{strategy}.sqlite"
    path.unlink(missing_ok=True)
    snapshot_cache(snapshot, path)
    s = settings.model_copy(deep=True)
    s.cache.path = path
    s.trace.enabled = True
    cache = Cache.open(path, s.account.id, topic_prefix=s.mqtt.topic_prefix, event_qos=s.mqtt.qos)
    conn_id = f"demo-measure-{strategy}-{time.time():.3f}"
    try:
        async with connect(s, conn_id=conn_id) as imap:
            await setup(imap, s)
            # The discovery step alone first (it changes nothing in the cache), then the whole catch-up.
            before = imap.counters.snapshot()
            await discover(imap, cache, strategy)
            disc = imap.counters.since(before)
            imap.take_trace()  # login, COMPRESS and that discovery are not part of the catch-up
            engine = SyncEngine(imap, cache, s, forced_strategy=strategy)
            result = await engine.catch_up()
            await imap.logout()
        rows = cache.trace(conn_id)
    finally:
        cache.close()
    t0 = rows[0][1] if rows else 0.0
    return CatchupMeasurement(
        strategy=strategy,
        imap_bytes_in=result.bytes.imap_in,
        imap_bytes_out=result.bytes.imap_out,
        wire_bytes_in=result.bytes.wire_in,
        wire_bytes_out=result.bytes.wire_out,
        folders_synced=result.folders,
        seconds=result.seconds,
        discovery_imap_bytes=disc.imap_in + disc.imap_out,
        discovery_wire_bytes=disc.wire_in + disc.wire_out,
        trace=tuple((t - t0, d, n) for _, t, d, n in rows),
    )


@dataclass(frozen=True)
class EnergyEstimate:
    radio: str
    catchups_per_day: float
    energy_j_per_catchup: float
    energy_j_per_day: float
    battery_pct_per_day: float
    radio_on_s_per_catchup: float
    air_bytes_up: int  # with TLS records, TCP/IP headers and ACKs added by the simulator
    air_bytes_down: int


def energy_per_day(m: CatchupMeasurement, radio: str, poll_interval_s: float) -> EnergyEstimate:
    """Price the catch-up's real byte trace on `radio`, once per poll interval.

    Polls are `poll_interval_s` apart, much longer than any radio tail, so each one starts from
    idle and they add up: energy/day = energy of one catch-up x polls per day.
    """
    from cpmsync.simulator import Transfer, load_profile, simulate_radio
    from cpmsync.simulator.runner import BATTERY_J
    from cpmsync.simulator.trace import to_wire_transfers

    profile = load_profile(radio)
    rows = [Transfer(t, "up" if d == "out" else "down", n) for t, d, n in m.trace]
    transfers, up, down = to_wire_transfers(rows)
    r = simulate_radio(profile, transfers)
    per_day = 86_400 / poll_interval_s
    return EnergyEstimate(
        radio=profile.name,
        catchups_per_day=per_day,
        energy_j_per_catchup=r.energy_j,
        energy_j_per_day=r.energy_j * per_day,
        battery_pct_per_day=100 * r.energy_j * per_day / BATTERY_J,
        radio_on_s_per_catchup=r.radio_on_s,
        air_bytes_up=up,
        air_bytes_down=down,
    )


DAEMON_STATUS_ITEMS = (
    "MESSAGES",
    "UIDNEXT",
    "UNSEEN",
    "HIGHESTMODSEQ",
    "UIDVALIDITY",
)  # discovery._status_items


def predict_discovery_bytes(store: Any, user: str, watermark: int, strategy: DiscoveryStrategy) -> int:
    """The simulator's IMAP-layer bytes (both ways) for this discovery on this exact account."""
    from cpmsync.simulator import predict_catchup_bytes

    listings = store.list_mailboxes(user, "", ["*"], with_status=True)
    statuses: dict[str, dict[str, int]] = {}
    for x in listings:
        st = x.status
        if st is None:
            continue
        statuses[x.name] = {
            "MESSAGES": st.messages, "UIDNEXT": st.uidnext, "UIDVALIDITY": st.uidvalidity,
            "UNSEEN": st.unseen, "HIGHESTMODSEQ": st.highestmodseq,
        }  # fmt: skip
    names = [x.name for x in listings]
    changed = [n for n, s in statuses.items() if s["HIGHESTMODSEQ"] > watermark]
    # Under CHANGEDSINCE the daemon leaves UIDVALIDITY out (it knows it for every cached folder).
    items = DAEMON_STATUS_ITEMS[:-1] if strategy.incremental else DAEMON_STATUS_ITEMS
    count = predict_catchup_bytes(
        names, statuses, changed, strategy, False,
        last_modseq=watermark, connect=False, server_style="msgstore",
        status_items=items, pipelined=False,
    )  # fmt: skip
    return int(count.imap_up + count.imap_down)
