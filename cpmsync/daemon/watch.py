"""`cpmsync watch`: subscribe to an account's topics and print what arrives — a stand-in UI app.

Like a real app it drops duplicate events by id (the daemon delivers at least once) and
reconnects when the broker goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TextIO

import aiomqtt
from rich.console import Console
from rich.markup import escape

from cpmsync.daemon.publisher import mqtt_client
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.topics import Topics
from cpmsync.logs import kv

__all__ = ["SeenIds", "WatchLine", "format_message", "watch_loop"]

log = logging.getLogger("cpmsync.daemon.watch")

SEEN_IDS_MAX = 10_000


class SeenIds:
    """Bounded memory of event ids, so a resent event is shown once."""

    def __init__(self, capacity: int = SEEN_IDS_MAX) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True when the id is new."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


WatchLine = dict[str, Any]


def format_message(topics: Topics, topic: str, payload: bytes) -> WatchLine:
    """Classify one MQTT message: `{"type", "folder", "topic", "payload"}` (payload None = cleared)."""
    kind, folder = topics.parse(topic)
    body: Any = None
    if payload:
        try:
            body = json.loads(payload)
        except ValueError:
            body = {"unparsed": payload.decode("utf-8", "replace")}
    return {"type": kind, "folder": folder, "topic": topic, "payload": body}


def _render(console: Console, line: WatchLine) -> None:
    p = line["payload"]
    folder = escape(line["folder"] or "")
    if line["type"] == "status" and p:
        err = f" [red]{escape(str(p.get('last_error')))}[/]" if p.get("last_error") else ""
        console.print(f"[bold]status[/] {p.get('state')} strategy={p.get('strategy')}{err}")
    elif line["type"] == "summary":
        if p is None:
            console.print(f"[bold]folder[/] {folder} [red]gone[/]")
        else:
            last = p.get("last") or {}
            console.print(
                f"[bold]folder[/] {folder} messages={p.get('messages')} unseen={p.get('unseen')}"
                + (f" last: {escape(str(last.get('subject')))}" if last else "")
            )
    elif line["type"] == "events" and p:
        kind = p.get("kind")
        uids = ",".join(str(u) for u in p.get("uids", []))
        extra = ""
        if kind == "message_added":
            extra = f" from={escape(str(p.get('from')))} subject={escape(str(p.get('subject')))}"
            if p.get("preview"):
                extra += f" [dim]{escape(p['preview'][:80])}[/]"
        elif kind == "flags_changed":
            extra = f" flags={' '.join(p.get('flags') or [])}"
        elif kind == "folder_renamed":
            extra = f" from {escape(str(p.get('old_folder')))}"
        console.print(f"[bold cyan]{kind}[/] {folder} uid={uids} modseq={p.get('modseq')}{extra}")
    else:
        console.print(f"{escape(line['topic'])} {escape(json.dumps(p))}")


async def watch_loop(
    settings: DaemonSettings,
    *,
    folder: str | None = None,
    as_json: bool = False,
    count: int | None = None,
    out: TextIO | None = None,
    on_subscribed: Callable[[], None] | None = None,
) -> int:
    """Print events until `count` events were shown (or forever); returns the number shown."""
    out = out or sys.stdout
    topics = Topics(settings.mqtt.topic_prefix, settings.account.id)
    if folder is None:
        subs = [topics.status, topics.all_summaries, topics.all_events]
    else:
        subs = [topics.status, topics.summary(folder), topics.events(folder)]
    console = Console(file=out, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    seen = SeenIds()
    shown = 0
    delay = settings.mqtt.reconnect_min_s
    client_id = f"cpmsync-watch-{uuid.uuid4().hex[:8]}"
    while True:
        try:
            async with mqtt_client(settings.mqtt, client_id=client_id, persistent=False) as client:
                for t in subs:
                    await client.subscribe(t, qos=1)
                delay = settings.mqtt.reconnect_min_s
                err.print(f"watching {' '.join(subs)}")
                if on_subscribed is not None:
                    on_subscribed()
                async for msg in client.messages:
                    raw = msg.payload
                    data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
                    line = format_message(topics, str(msg.topic), data)
                    p = line["payload"]
                    if line["type"] == "events" and isinstance(p, dict) and not seen.add(str(p.get("id"))):
                        continue
                    if as_json:
                        out.write(json.dumps(line) + "\n")
                        out.flush()
                    else:
                        _render(console, line)
                    if line["type"] == "events":
                        shown += 1
                        if count is not None and shown >= count:
                            return shown
        except aiomqtt.MqttError as e:
            err.print(f"[yellow]broker unavailable ({escape(str(e))}), retrying in {delay:.1f}s[/]")
            log.debug("watch reconnect", extra=kv(error=str(e)))
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.mqtt.reconnect_max_s)
