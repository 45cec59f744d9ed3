"""What the store extracts from message bytes: header values for SEARCH, the Date: day, THREADID.

Only headers are parsed (BytesHeaderParser), never the body, so APPEND stays cheap.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

__all__ = ["MessageMeta", "day_number", "header_values", "parse_meta", "split_message"]

_EPOCH = date(1970, 1, 1)
_PARSER = BytesHeaderParser(policy=compat32)


@dataclass(frozen=True, slots=True)
class MessageMeta:
    sent_day: int | None
    threadid: str | None


def day_number(d: date) -> int:
    """Days since 1970-01-01 of a date (for the *_day columns)."""
    if isinstance(d, datetime):
        d = d.date()
    return (d - _EPOCH).days


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header block incl. its blank line, body) per RFC 5322; no blank line = all header."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return data[: i + len(sep)], data[i + len(sep) :]
    return data, b""


def _decode(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, LookupError, email.errors.HeaderParseError):
        return value


def header_values(data: bytes, name: str) -> list[str]:
    """Decoded (RFC 2047) values of every `name` header, unfolded."""
    msg = _PARSER.parsebytes(split_message(data)[0])
    return [_decode(str(v)).replace("\r\n", "").replace("\n", "") for v in msg.get_all(name, [])]


def _sent_day(value: str | None) -> int | None:
    """Calendar day of the Date: header in the sender's own zone (what SENTON compares)."""
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return day_number(date(parsed[0], parsed[1], parsed[2]))
    except (ValueError, OverflowError):
        return None


def _thread_key(msg: Message) -> str | None:
    get = msg.get
    # CPM chats carry their conversation explicitly; mail falls back to the References root.
    for header in ("Conversation-ID", "References", "In-Reply-To", "Message-ID"):
        v = get(header)
        if v:
            first = str(v).split()[0] if header == "References" else str(v).strip()
            if first:
                return first
    return None


def parse_meta(data: bytes) -> MessageMeta:
    msg = _PARSER.parsebytes(split_message(data)[0])
    key = _thread_key(msg)
    threadid = "T" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24] if key else None
    return MessageMeta(sent_day=_sent_day(msg.get("Date")), threadid=threadid)
