"""Helpers for the actions tests: an app that publishes actions over MQTT and collects results,
and a second IMAP client (imapclient) that plays another device and reads the server's truth."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from daemon_mqtt_helpers import WAIT_S, Collector
from daemon_sync_helpers import daemon_settings, other_client
from imapclient import IMAPClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cpmsync.daemon.settings import DaemonSettings
from tests.support.peers import ImapPeer


def settings_for(
    peer: ImapPeer, mqtt_port: int, tmp: Path, *, via: tuple[str, int] | None = None, **actions: Any
) -> DaemonSettings:
    """Daemon settings for this peer (through `via` = a FaultProxy's host and port, if given)."""
    host, port = via or (peer.host, peer.port)
    s = daemon_settings(host, port, peer.user, peer.password, mqtt_port, tmp)
    return s.model_copy(update={"actions": s.actions.model_copy(update=actions)})


@contextlib.contextmanager
def device(peer: ImapPeer, host: str | None = None, port: int | None = None) -> Iterator[IMAPClient]:
    """Another device on the same account (imapclient, not ours), logged in."""
    c = other_client(host or peer.host, port or peer.port, peer.user, peer.password)
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.logout()


def message(subject: str, sender: str = "bob@example.org", body: str = "hello") -> bytes:
    return f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def seed(peer: ImapPeer, folders: dict[str, int], *, seen: bool = False) -> None:
    """Create folders with n unseen (or seen) messages each."""
    with device(peer) as c:
        for name, n in folders.items():
            if not c.folder_exists(name):
                c.create_folder(name)
            for i in range(n):
                c.append(name, message(f"{name} #{i}"), flags=(b"\\Seen",) if seen else ())


def server_flags(peer: ImapPeer, folder: str) -> dict[int, frozenset[str]]:
    with device(peer) as c:
        c.select_folder(folder, readonly=True)
        uids = c.search("ALL")
        data = c.fetch(uids, ["FLAGS"]) if uids else {}
        out = {}
        for uid, d in data.items():
            out[uid] = frozenset(f.decode() if isinstance(f, bytes) else str(f) for f in d[b"FLAGS"]) - {
                "\\Recent"
            }
        return out


def server_unseen(peer: ImapPeer, folder: str) -> int:
    with device(peer) as c:
        return int(c.folder_status(folder, [b"UNSEEN"])[b"UNSEEN"])


def server_folders(peer: ImapPeer) -> set[str]:
    with device(peer) as c:
        return {name for _f, _d, name in c.list_folders()}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class App:
    """Publishes actions on `{prefix}/{account}/actions` and collects what comes back: results,
    retained summaries and events (a Collector on the account's topics)."""

    port: int
    account: str
    col: Collector = field(init=False)
    _client: aiomqtt.Client | None = None

    def __post_init__(self) -> None:
        self.col = Collector(
            self.port,
            [f"cpm/{self.account}/actions/results", f"cpm/{self.account}/folders/#", f"app/{self.account}/#"],
            client_id=f"app-{self.account}",
        )

    @property
    def actions_topic(self) -> str:
        return f"cpm/{self.account}/actions"

    async def publish(
        self,
        action: dict[str, Any] | bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        assert self._client is not None
        payload = action if isinstance(action, bytes) else json.dumps(action).encode()
        props = None
        if response_topic is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        await self._client.publish(self.actions_topic, payload, qos=1, properties=props)

    def results(self, aid: str | None = None) -> list[dict[str, Any]]:
        return [
            m.json
            for m in self.col.messages
            if m.topic.endswith("/actions/results") and m.payload and (aid is None or m.json["id"] == aid)
        ]

    def states(self, aid: str) -> list[str]:
        return [r["state"] for r in self.results(aid)]

    async def wait_result(self, aid: str, state: str = "applied", *, final: bool = True) -> dict[str, Any]:
        """The first result of `aid` in `state` (final: applied or failed, whichever comes)."""

        def found(_ms: Any) -> bool:
            return any(s == state or (final and s in ("applied", "failed")) for s in self.states(aid))

        await self.col.wait_until(found)
        return next(
            r
            for r in self.results(aid)
            if r["state"] == state or (final and r["state"] in ("applied", "failed"))
        )

    def summary(self, folder: str) -> dict[str, Any] | None:
        from cpmsync.daemon.topics import summary_topic

        topic = summary_topic("cpm", self.account, folder)
        last = [m for m in self.col.messages if m.topic == topic]
        return last[-1].json if last else None

    async def wait_summary(self, folder: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        await self.col.wait_until(lambda _ms: (s := self.summary(folder)) is not None and pred(s))
        s = self.summary(folder)
        assert s is not None
        return s


@contextlib.asynccontextmanager
async def running_app(port: int, account: str) -> AsyncIterator[App]:
    app = App(port, account)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(app.col.run())
        async with asyncio.timeout(WAIT_S):
            await app.col.subscribed.wait()
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=f"app-pub-{account}", protocol=aiomqtt.ProtocolVersion.V5, timeout=5
        ) as client:
            app._client = client
            try:
                yield app
            finally:
                app._client = None
                task.cancel()
