"""The reference inbox page (`cpmsync app web`) in a real browser: Debian's Chromium, headless,
driven by Playwright for Python with the system browser (none is downloaded). Real peers behind
it: msgstore, a private Mosquitto, the daemon, and imapclient as another device.

Set CPMSYNC_SAVE_SCREENSHOT=1 to write the screenshot the README shows (docs/img/inbox.png);
otherwise it goes to the test's temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from cpmsync.app.web import InboxBridge
from cpmsync.daemon.cache import open_cache
from cpmsync.daemon.publisher import Publisher
from cpmsync.daemon.service import ImapSession
from cpmsync.daemon.settings import DaemonSettings
from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings
from tests.support import MosquittoBroker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "inbox.png"
WAIT_S = 30.0  # a safety net for setup; the live-update check has its own 2 s bound (issue 16)

CONVERSATIONS = {
    "tel:+15145550101": [
        ("Ana", "Lunch?", "Noon at the usual place?"),
        ("Ana", "Re: Lunch?", "I booked a table"),
    ],
    "tel:+15145550102": [("Bruno", "Photos", "Here are the photos from Saturday")],
    "Family": [("Mum", "Sunday", "Dinner at 6, bring dessert"), ("Dad", "Re: Sunday", "And the charger")],
}


_dates = iter(range(10, 59))


def _msg(sender: str, subject: str, body: str) -> bytes:
    return (
        f"From: {sender} <{sender.lower()}@example.org>\r\nTo: alice@example.org\r\n"
        f"Date: Fri, 4 Dec 2026 09:{next(_dates):02d}:00 +0000\r\n"
        f"Subject: {subject}\r\n\r\n{body}\r\n"
    ).encode()


@contextlib.contextmanager
def _device(port: int) -> Iterator[IMAPClient]:
    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login("alice", USERS["alice"])
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.logout()


def _seed(port: int) -> None:
    with _device(port) as c:
        for name, msgs in CONVERSATIONS.items():
            c.create_folder(name)
            for m in msgs:
                c.append(name, _msg(*m))


def _unseen(port: int, folder: str) -> int:
    with _device(port) as c:
        return int(c.folder_status(folder, [b"UNSEEN"])[b"UNSEEN"])


def _count(port: int, folder: str) -> int:
    with _device(port) as c:
        return int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])


async def _until(pred: Callable[[], bool]) -> None:
    """Poll the server (it has no change callback for a test to await)."""
    async with asyncio.timeout(WAIT_S):
        while not await asyncio.to_thread(pred):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _stack(imap_port: int, mqtt_port: int, tmp: Path) -> AsyncIterator[InboxBridge]:
    """Daemon + inbox bridge in this event loop, as `cpmsync daemon run` and `cpmsync app web` run them."""
    settings = DaemonSettings.model_validate(
        {
            "account": {"id": "alice"},
            "imap": {
                "host": "127.0.0.1",
                "port": imap_port,
                "tls": "none",
                "username": "alice",
                "password": USERS["alice"],
                "debounce_ms": 20,
            },
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "cache": {"path": str(tmp / "cache.sqlite")},
            "actions": {"window_ms": 50},
        }
    )
    cache = open_cache(settings)
    publisher = Publisher(settings.mqtt, settings.account.id, cache)
    session = ImapSession(settings, cache, publisher)
    bridge = InboxBridge(settings, "127.0.0.1", 0)
    try:
        async with asyncio.TaskGroup() as tg:
            pub = tg.create_task(publisher.run())
            sess = tg.create_task(session.run())
            web = tg.create_task(bridge.run())
            async with asyncio.timeout(WAIT_S):
                await session.ready.wait()
                await bridge.ready.wait()
            try:
                yield bridge
            finally:
                web.cancel()
                session.stop.set()
                await sess
                await publisher.close()
                del pub
    finally:
        cache.close()


@pytest.fixture
def msgstore() -> Iterator[ThreadServer]:
    with ThreadServer(make_settings()) as srv:
        yield srv


async def test_inbox_page_in_headless_chromium(
    msgstore: ThreadServer, mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    assert shutil.which(CHROMIUM), "apt-get install chromium (bash .ci/run does)"
    port = msgstore.port
    await asyncio.to_thread(_seed, port)
    async with _stack(port, mqtt_broker.port, tmp_path) as bridge, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 560})
            await page.goto(bridge.url)
            # The seeded conversations show up, with their unread counts and last message.
            for name, msgs in CONVERSATIONS.items():
                item = page.locator(f'li[data-folder="{name}"]')
                await item.wait_for(timeout=WAIT_S * 1000)
                await page.wait_for_function(
                    "([n, c]) => document.querySelector(`li[data-folder='${n}'] .unread`)"
                    "?.dataset.count === c",
                    arg=[name, str(len(msgs))],
                    timeout=WAIT_S * 1000,
                )
                assert msgs[-1][1] in await item.locator(".last").inner_text()

            # Another device APPENDs: the page shows it within 2 s.
            def append() -> None:
                with _device(port) as c:
                    c.append("tel:+15145550102", _msg("Bruno", "Fresh news", "Just landed"))

            await asyncio.to_thread(append)
            await page.wait_for_function(
                "() => document.querySelector('li[data-folder=\"tel:+15145550102\"] .last')"
                "?.textContent.includes('Fresh news')",
                timeout=2000,
            )

            # Opening a conversation marks it read on the server, through the actions.
            await page.locator('li[data-folder="tel:+15145550101"]').click()
            await page.locator("#conversation .msg").first.wait_for(timeout=WAIT_S * 1000)
            await _until(lambda: _unseen(port, "tel:+15145550101") == 0)
            await page.wait_for_function(
                "() => document.querySelector('li[data-folder=\"tel:+15145550101\"] .unread')"
                "?.dataset.count === '0'",
                timeout=WAIT_S * 1000,
            )
            assert await asyncio.to_thread(_unseen, port, "Family") == 2  # only the one opened
            await page.locator("#conversation .msg:not(.unseen)").nth(1).wait_for(timeout=WAIT_S * 1000)
            shot = SCREENSHOT if os.environ.get("CPMSYNC_SAVE_SCREENSHOT") else tmp_path / "inbox.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # Delete works too: one message of the open conversation.
            await page.locator("#conversation .msg button").first.click()
            await page.wait_for_function(
                "() => document.querySelectorAll('#conversation .msg').length === 1", timeout=WAIT_S * 1000
            )
            await _until(lambda: _count(port, "tel:+15145550101") == 1)
        finally:
            await browser.close()
