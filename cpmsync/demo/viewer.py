"""What a UI app on the device receives: the account's MQTT events, shown as they arrive.

It subscribes like any app would (status + every folder's events), drops duplicates by event id
(the daemon delivers at least once), and counts. While the first sync floods in thousands of
`folder_added`/`message_added` events it only counts them; afterwards it prints each one.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import aiomqtt
from rich.console import Console
from rich.markup import escape

from cpmsync.daemon.publisher import mqtt_client
from cpmsync.daemon.settings import MqttSettings
from cpmsync.daemon.topics import Topics
from cpmsync.daemon.watch import SeenIds

__all__ = ["EventViewer"]

PREVIEW_CHARS = 40
FOLDER_CHARS = 24
FROM_CHARS = 20

_KIND_STYLE = {
    "message_added": "green",
    "flags_changed": "yellow",
    "message_removed": "red",
    "folder_added": "blue",
    "folder_removed": "magenta",
    "folder_renamed": "magenta",
}


def _short(text: str | None, n: int) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


class EventViewer:
    """Subscribes before the daemon starts; `quiet` until the first sync is over."""

    def __init__(self, mqtt: MqttSettings, account: str, console: Console) -> None:
        self.mqtt = mqtt
        self.topics = Topics(mqtt.topic_prefix, account)
        self.console = console
        self.quiet = True
        self.subscribed = asyncio.Event()
        self.events = 0
        self.events_live = 0  # after the first sync: the ones the change generator caused
        self.duplicates = 0
        self.kinds: Counter[str] = Counter()
        self.kinds_live: Counter[str] = Counter()
        self.last_event_t = time.monotonic()
        self.status: dict[str, Any] | None = None
        self._seen = SeenIds()

    async def run(self) -> None:
        """Until cancelled; reconnects if the broker drops us."""
        client_id = f"cpmsync-demo-app-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with mqtt_client(self.mqtt, client_id=client_id, persistent=False) as client:
                    await client.subscribe(self.topics.status, qos=1)
                    await client.subscribe(self.topics.all_events, qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        raw = msg.payload
                        data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
                        self._handle(str(msg.topic), data)
            except aiomqtt.MqttError as e:
                self.console.print(f"[yellow]app: broker connection lost ({escape(str(e))}), retrying[/]")
                await asyncio.sleep(self.mqtt.reconnect_min_s)

    def _handle(self, topic: str, data: bytes) -> None:
        kind, folder = self.topics.parse(topic)
        try:
            p = json.loads(data) if data else None
        except ValueError:
            return
        if not isinstance(p, dict):
            return
        if kind == "status":
            self.status = p
            if not self.quiet:
                self.console.print(f"[dim]app  status {p.get('state')} strategy={p.get('strategy')}[/]")
            return
        if kind != "events":
            return
        if not self._seen.add(str(p.get("id"))):
            self.duplicates += 1
            return
        self.events += 1
        self.kinds[str(p.get("kind"))] += 1
        self.last_event_t = time.monotonic()
        if self.quiet:
            return
        self.events_live += 1
        self.kinds_live[str(p.get("kind"))] += 1
        self.console.print(self.render(folder or "", p), highlight=False, no_wrap=True, overflow="ellipsis")

    @staticmethod
    def render(folder: str, p: dict[str, Any]) -> str:
        """One line as an app's notification list would show it."""
        kind = str(p.get("kind"))
        style = _KIND_STYLE.get(kind, "white")
        uids = ",".join(str(u) for u in p.get("uids") or [])
        name = escape(_short(folder, FOLDER_CHARS))
        head = f"[{style}]app  {kind:<15}[/] {name:<{FOLDER_CHARS}} uid {uids:<4}"
        if kind == "message_added":
            frm = escape(_short(p.get("from"), FROM_CHARS))
            prev = escape(_short(p.get("preview") or p.get("subject"), PREVIEW_CHARS))
            return f"{head} {frm}: [italic]{prev}[/]"
        if kind == "flags_changed":
            return f"{head} flags={' '.join(p.get('flags') or []) or '(none)'}"
        if kind == "folder_renamed":
            return f"{head} from {escape(str(p.get('old_folder')))}"
        return head
