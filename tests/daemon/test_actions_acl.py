"""The README's Mosquitto ACL, as written there, on a private Mosquitto: the inbox app may act on
the account, the dialer app may only watch (the broker drops its action: no result ever comes)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from daemon_actions_helpers import seed, server_unseen, settings_for
from daemon_mqtt_helpers import BROKER_CONF, Collector
from daemon_sync_helpers import running_daemon
from pydantic import SecretStr

from tests.support.fixtures import start_broker_or_fail
from tests.support.peers import ImapPeer

README = Path(__file__).resolve().parents[2] / "README.md"
USERS = {"cpmsync": "daemon-pw", "inbox": "inbox-pw", "dialer": "dialer-pw"}


def readme_acl(account: str) -> str:
    text = README.read_text()
    m = re.search(r"```\n(# /etc/mosquitto/acl.*?)```", text, re.S)
    assert m, "the ACL example is gone from the README"
    return m.group(1).replace("cpm/alice/", f"cpm/{account}/")


@pytest.fixture
def acl_broker(tmp_path: Path, imap_peer: ImapPeer) -> Iterator[int]:
    passwd = tmp_path / "passwd"
    for i, (user, pw) in enumerate(USERS.items()):
        subprocess.run(
            ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, pw], check=True
        )
    acl = tmp_path / "acl"
    acl.write_text(readme_acl(imap_peer.user))
    conf = [BROKER_CONF, "allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
    b = start_broker_or_fail(extra_conf="\n".join(conf))
    try:
        yield b.port
    finally:
        b.close()


async def test_only_the_apps_the_acl_names_may_act(
    imap_peer: ImapPeer, acl_broker: int, tmp_path: Path
) -> None:
    seed(imap_peer, {"chat": 2})
    settings = settings_for(imap_peer, acl_broker, tmp_path)
    mqtt = settings.mqtt.model_copy(update={"username": "cpmsync", "password": SecretStr(USERS["cpmsync"])})
    settings = settings.model_copy(update={"mqtt": mqtt})
    acct = imap_peer.user
    col = Collector(
        acl_broker,
        [f"cpm/{acct}/actions/results"],
        client_id="inbox-sub",
        username="inbox",
        password="inbox-pw",
    )
    async with running_daemon(settings) as (session, _cache), asyncio.TaskGroup() as tg:
        task = tg.create_task(col.run())
        async with asyncio.timeout(30):
            await session.publisher.inbox.ready.wait()
            await col.subscribed.wait()
        for user, aid in (("dialer", "from-dialer"), ("inbox", "from-inbox")):
            async with aiomqtt.Client(
                "127.0.0.1",
                acl_broker,
                identifier=f"{user}-pub",
                username=user,
                password=USERS[user],
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as client:
                action = {"id": aid, "action": "mark_read", "folder": "chat"}
                await client.publish(f"cpm/{acct}/actions", json.dumps(action).encode(), qos=1)
        await col.wait_until(
            lambda ms: any(m.json["id"] == "from-inbox" and m.json["state"] == "applied" for m in ms)
        )
        assert not [m for m in col.messages if m.json["id"] == "from-dialer"]
        assert await asyncio.to_thread(server_unseen, imap_peer, "chat") == 0
        task.cancel()
