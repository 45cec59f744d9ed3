"""Parser events that are not IMAP values: the NEED_DATA sentinel and server-side signals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["NEED_DATA", "ContinuationNeeded", "NeedData", "RawLine"]


class NeedData:
    """Type of NEED_DATA: feed more bytes before asking for the next event."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class ContinuationNeeded:
    """The client announced a synchronizing literal `{size}`: the server must write `+ ...` now."""

    tag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line read in raw mode (IDLE's DONE, an AUTHENTICATE response); CRLF stripped."""

    data: bytes
