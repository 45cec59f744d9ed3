"""The long differential soak and the convergence benchmark (tests/support/soak.py does the work).

    python bench/bench_soak.py soak [--minutes 10] [--peer msgstore|dovecot|both]
                                    [--fault none|sigkill|broker|cut|all] [--seed N]
    python bench/bench_soak.py bursts [--bursts 20] [--size 40] [--peer both]

`soak`: a change stream of --minutes per peer and fault mode at 20 changes/s over 300 folders; prints
changes made, mismatches and the time from the last change to "cache, retained summaries and
replayed events equal the server" (that check itself takes seconds on 300 folders, so it is an
upper bound).

`bursts`: the daemon with NOTIFY and no fault; bursts of --size changes at 17/s on the seeded
folders, then the time from each burst's last change until every retained summary of the folders
it touched equals the server's STATUS (a subscriber's view, checked every 20 ms); p50 / p99 per peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
from imapclient import IMAPClient

from cpmsync.daemon.topics import decode_folder
from cpmsync.testing import DovecotServer, FaultProxy, MosquittoBroker, seed_imap
from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings
from tests.support.peers import ImapPeer
from tests.support.soak import FAULTS, ChangeStream, Daemon, _daemon_config, run_soak


async def _proxy(host: str, port: int, **kw: Any) -> FaultProxy:
    return await FaultProxy(host, port, **kw).start()


@contextlib.contextmanager
def _peer(name: str) -> Any:
    if name == "dovecot":
        with DovecotServer(users={"soak": "soak-pw"}) as dv:
            yield ImapPeer("dovecot", dv.host, dv.port, "soak", "soak-pw")
    else:
        with ThreadServer(make_settings()) as srv:
            yield ImapPeer("msgstore", "127.0.0.1", srv.port, "alice", USERS["alice"])


async def soak(args: argparse.Namespace) -> None:
    peers = ["msgstore", "dovecot"] if args.peer == "both" else [args.peer]
    faults = list(FAULTS) if args.fault == "all" else [args.fault]
    print(f"{'peer':9} {'fault':8} {'seed':>11} {'changes':>8} {'faults':>6} {'converged s':>12} mismatches")
    for p in peers:
        for f in faults:
            with _peer(p) as peer, tempfile.TemporaryDirectory() as tmp:
                r = await run_soak(
                    peer, Path(tmp), _proxy, fault=f, seconds=args.minutes * 60, seed=args.seed
                )
                conv = f"{r.convergence_s:.2f}" if r.convergence_s is not None else "never"
                faults_hit = r.restarts + r.cuts
                print(
                    f"{p:9} {f:8} {r.seed:>11} {r.changes:>8} {faults_hit:>6} {conv:>12} {len(r.mismatches)}"
                )
                for m in r.mismatches[:10]:
                    print("   ", m)


class Summaries:
    """The retained folder summaries as a subscriber sees them, kept current."""

    def __init__(self, port: int, account: str) -> None:
        self.port, self.account = port, account
        self.now: dict[str, tuple[int, int]] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        prefix = f"cpm/{self.account}/folders/"
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"bench-{self.account}") as c:
            await c.subscribe(f"{prefix}+", qos=1)
            self.ready.set()
            async for m in c.messages:
                name = decode_folder(str(m.topic)[len(prefix) :])
                payload = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
                if payload:
                    d = json.loads(payload)
                    self.now[name] = (d["messages"], d["unseen"])
                else:
                    self.now.pop(name, None)


def _status(peer: ImapPeer, folders: set[str]) -> dict[str, tuple[int, int]]:
    c = IMAPClient(peer.host, peer.port, ssl=False)
    c.login(peer.user, peer.password)
    try:
        out = {}
        for f in folders:
            st = c.folder_status(f, [b"MESSAGES", b"UNSEEN"])
            out[f] = (int(st[b"MESSAGES"]), int(st[b"UNSEEN"]))
        return out
    finally:
        c.logout()


class _Burst(ChangeStream):
    """Message changes only (folder operations would make 'the folders it touched' ambiguous)."""

    def __init__(self, peer: ImapPeer, folders: list[str], seed: int, rate: float, limit: int) -> None:
        super().__init__(peer, folders, seed, rate)
        self.touched: set[str] = set()
        self.limit = limit

    def _one(self, c: IMAPClient) -> None:
        rng = self.rng
        folder = rng.choice(self.folders)
        self.touched.add(folder)
        if rng.random() < 0.6:
            c.append(folder, f"From: <tel:+15145550111>\r\nSubject: b{self.made}\r\n\r\nhi\r\n".encode())
        else:
            c.select_folder(folder)
            uids = c.search("ALL")
            if uids:
                c.add_flags([rng.choice(uids)], [b"\\Seen"])
            c.unselect_folder()
        self._count("burst")
        if self.made >= self.limit:
            self.stop.set()


async def bursts(args: argparse.Namespace) -> None:
    peers = ["msgstore", "dovecot"] if args.peer == "both" else [args.peer]
    for p in peers:
        with _peer(p) as peer, tempfile.TemporaryDirectory() as tmp:
            seeded = await asyncio.to_thread(
                seed_imap, peer.host, peer.port, peer.user, peer.password, 300, 2
            )
            proxy = await _proxy(peer.host, peer.port)
            broker = MosquittoBroker(extra_conf="set_tcp_nodelay true").start()
            conf = Path(tmp) / "daemon.toml"
            _daemon_config(conf, proxy, peer, broker.port, Path(tmp) / "cache.sqlite")
            daemon = Daemon(conf, peer.password)
            sums = Summaries(broker.port, peer.user)
            times: list[float] = []
            try:
                async with asyncio.TaskGroup() as tg:
                    st = tg.create_task(sums.run())
                    await sums.ready.wait()
                    daemon.start()
                    while len(sums.now) < len(seeded.folders):  # noqa: ASYNC110 - the first sync
                        await asyncio.sleep(0.2)
                    for i in range(args.bursts):
                        b = _Burst(peer, list(seeded.folders), 1000 + i, 17.0, args.size)
                        await asyncio.to_thread(b.run)
                        t_last = time.monotonic()
                        want = await asyncio.to_thread(_status, peer, b.touched)
                        while any(sums.now.get(f) != v for f, v in want.items()):
                            await asyncio.sleep(0.02)
                            if time.monotonic() - t_last > 60:
                                break
                        times.append(time.monotonic() - t_last)
                        await asyncio.sleep(1.0)
                    st.cancel()
            finally:
                await asyncio.to_thread(daemon.stop)
                broker.close()
                await proxy.aclose()
            ordered = sorted(times)
            p99 = ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))]  # nearest rank
            print(
                f"{p}: {args.bursts} bursts of {args.size} changes at 17/s over 300 folders: "
                f"last change -> retained summaries equal the server: p50 {statistics.median(times):.2f} s, "
                f"p99 {p99:.2f} s, max {max(times):.2f} s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--peer", choices=["msgstore", "dovecot", "both"], default="both")
    s.add_argument("--fault", choices=[*FAULTS, "all"], default="all")
    s.add_argument("--seed", type=int, default=None)
    b = sub.add_parser("bursts")
    b.add_argument("--bursts", type=int, default=20)
    b.add_argument("--size", type=int, default=40)
    b.add_argument("--peer", choices=["msgstore", "dovecot", "both"], default="both")
    args = ap.parse_args()
    asyncio.run(soak(args) if args.mode == "soak" else bursts(args))


if __name__ == "__main__":
    main()
