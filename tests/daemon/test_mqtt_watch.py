"""`cpmsync watch`, the stand-in UI app, run as a real process against a private broker."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from daemon_mqtt_helpers import BROKER_CONF, mqtt_settings, open_cache, produce, wait_for

from cpmsync.daemon.publisher import Publisher
from tests.support import MosquittoBroker


def write_config(path: Path, port: int, account: str) -> Path:
    path.write_text(
        f'[account]\nid = "{account}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[cache]\npath = "{path.parent / "cache.sqlite"}"\n'
    )
    return path


async def spawn_watch(config: Path, *args: str) -> asyncio.subprocess.Process:
    """`cpmsync watch --config ...` as a process, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cpmsync.cli",
        "watch",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_watch(config: Path, *args: str) -> asyncio.subprocess.Process:
    """`spawn_watch`, once it says it is watching."""
    proc = await spawn_watch(config, *args)
    assert proc.stderr is not None
    async with asyncio.timeout(30):
        line = await proc.stderr.readline()
    assert line.startswith(b"watching"), line
    return proc


async def test_watch_prints_events_as_json_and_drops_duplicates(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "daemon.toml", broker.port, "w1")
    proc = await start_watch(config, "--json", "--count", "4", "--folder", "Chats/Bob")
    try:
        cache = open_cache(tmp_path / "c.sqlite", "w1")
        pub = Publisher(mqtt_settings(broker.port), "w1", cache)
        produce(cache, "Other", 1, 2)  # not the folder asked for: must not show
        produce(cache, "Chats/Bob", 1, 2)
        resend = next(i for i in cache.outbox_batch(100) if b'"uids":[1]' in i.payload and "Bob" in i.topic)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pub.run())
            await wait_for(lambda: cache.outbox_count() == 0)
            # the same event again, as after a cut before the PUBACK: the watcher shows it once
            async with aiomqtt.Client("127.0.0.1", broker.port) as c:
                await c.publish(resend.topic, resend.payload, qos=1)
            produce(cache, "Chats/Bob", 3, 1)
            async with asyncio.timeout(30):
                out, _ = await proc.communicate()
            await pub.close()
        lines = [json.loads(x) for x in out.decode().splitlines()]
        events = [x["payload"] for x in lines if x["type"] == "events"]
        assert [(e["kind"], e["uids"]) for e in events] == [
            ("folder_added", []),
            ("message_added", [1]),
            ("message_added", [2]),
            ("message_added", [3]),
        ]
        assert events[1]["subject"] == "Chats/Bob #1"
        assert all(x["folder"] == "Chats/Bob" for x in lines if x["type"] != "status")
        summaries = [x for x in lines if x["type"] == "summary"]
        assert summaries and summaries[0]["payload"]["name"] == "Chats/Bob"
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_watch_prints_a_readable_line(broker: MosquittoBroker, tmp_path: Path) -> None:
    config = write_config(tmp_path / "daemon.toml", broker.port, "w2")
    proc = await start_watch(config, "--count", "2")
    try:
        cache = open_cache(tmp_path / "c.sqlite", "w2")
        pub = Publisher(mqtt_settings(broker.port), "w2", cache)
        produce(cache, "INBOX", 7, 1)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pub.run())
            async with asyncio.timeout(30):
                out, _ = await proc.communicate()
            await pub.close()
        text = out.decode()
        assert "message_added INBOX uid=7" in text
        assert "subject=INBOX #7" in text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_watch_waits_for_a_broker_that_is_down(
    mqtt_broker_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    broker = mqtt_broker_factory(extra_conf=BROKER_CONF)
    broker.stop()  # down when `watch` starts; start() brings it back on the same port
    config = write_config(tmp_path / "daemon.toml", broker.port, "w3")
    proc = await spawn_watch(config, "--json", "--count", "1")
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            assert b"broker unavailable" in await proc.stderr.readline()
            broker.start()
            while not (await proc.stderr.readline()).startswith(b"watching"):
                pass
        cache = open_cache(tmp_path / "c.sqlite", "w3")
        produce(cache, "INBOX", 1, 1)
        item = next(i for i in cache.outbox_batch(10) if b"folder_added" in i.payload)
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            await c.publish(item.topic, item.payload, qos=1)
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
        lines = [json.loads(x) for x in out.decode().splitlines()]
        (line,) = [x for x in lines if x["type"] == "events"]
        assert line["payload"]["kind"] == "folder_added" and proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
