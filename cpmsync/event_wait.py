"""Waiting for an asyncio.Event with a time limit, the one way the daemon and msgstore do it."""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(ev: asyncio.Event, timeout_s: float) -> bool:
    """True once `ev` is set (at once when it is already), False when timeout_s ran out first
    (at once when it is not positive)."""
    if ev.is_set():
        return True
    if timeout_s <= 0:
        return False
    try:
        async with asyncio.timeout(timeout_s):
            await ev.wait()
    except TimeoutError:
        return False
    return True
