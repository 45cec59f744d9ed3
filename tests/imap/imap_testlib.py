"""Helpers shared by the codec tests: run whole byte strings through the parsers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpmsync.imap import *  # noqa: F403  (the whole public codec, by its __all__)


def _feed(p: Any, data: bytes, chunk: int | None, on_event: Callable[[object], bool]) -> list[object]:
    """Feed `data` to parser `p` in chunks; every event (and ImapProtocolError, in place) for which
    `on_event` says keep."""
    out: list[object] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step) if data else [0]:
        p.feed(data[i : i + step])
        while True:
            try:
                ev = p.next_event()
            except ImapProtocolError as e:
                out.append(e)
                continue
            if ev is NEED_DATA:
                break
            if on_event(ev):
                out.append(ev)
    return out


def feed_responses(data: bytes, chunk: int | None = None, **limits: int) -> list[object]:
    """All responses (and ImapProtocolError instances, in place) from data fed in chunks."""
    return events_of(ResponseParser(**limits), data, chunk)


def events_of(p: Any, data: bytes, chunk: int | None = None) -> list[object]:
    """Every event of parser `p` (errors in place) for data fed in chunks."""
    return _feed(p, data, chunk, lambda ev: True)


def feed_commands(
    data: bytes, chunk: int | None = None, *, continuations: bool = True, **limits: int
) -> list[object]:
    """All command-parser events (errors included, in place); IDLE/AUTHENTICATE switch to raw mode."""
    p = CommandParser(**limits)

    def keep(ev: object) -> bool:
        if isinstance(ev, ContinuationNeeded) and not continuations:
            return False
        name = type(ev).__name__
        if name == "IdleCommand" or (name == "AuthenticateCommand" and ev.initial_response is None):  # type: ignore[attr-defined]
            p.expect_raw_line()
        return True

    return _feed(p, data, chunk, keep)


def errors_equal(a: list[object], b: list[object]) -> bool:
    """Compare event lists, treating two errors as equal if type and message match."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, ImapProtocolError) or isinstance(y, ImapProtocolError):
            if type(x) is not type(y) or x.message != y.message:  # type: ignore[union-attr]
                return False
        elif x != y:
            return False
    return True


__all__ = ["RawLine", "errors_equal", "feed_commands", "feed_responses"]
