"""Run a Publisher in its own process (for the Last Will test, which kills this process).

usage: python daemon_publisher_proc.py PORT ACCOUNT CACHE_PATH
Prints "connected" once the status is published, then idles.
"""

from __future__ import annotations

import asyncio
import sys

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.settings import MqttSettings


async def main(port: int, account: str, path: str) -> None:
    cache = Cache.open(path, account)
    pub = Publisher(MqttSettings(host="127.0.0.1", port=port, keepalive_s=60), account, cache)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        pub.set_status("online", capabilities=["QRESYNC", "LIST-CHANGEDSINCE"], strategy="list-changedsince")
        # the status is published first on connect; the outbox is empty, so connected == announced
        while not (pub.connected and not pub._status_dirty):  # noqa: ASYNC110 - test helper
            await asyncio.sleep(0.01)
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
