"""What the store extracts from message bytes: header values for SEARCH, the Date: day, THREADID.

Only headers are parsed, never the body. APPEND's part (`parse_meta`) only splits the header block
into fields: the email package's parser cost more than the rest of an APPEND together.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from cpmsync.msgstore.fetch_render import header_fields

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


# CPM chats carry their conversation explicitly; mail falls back to the References root.
_THREAD_HEADERS = ("conversation-id", "references", "in-reply-to", "message-id")
_META_HEADERS = frozenset({*_THREAD_HEADERS, "date"})


def _thread_key(first: dict[str, str]) -> str | None:
    for header in _THREAD_HEADERS:
        v = first.get(header)
        if v and v.strip():
            return v.split()[0] if header == "references" else v.strip()
    return None


def parse_meta(data: bytes) -> MessageMeta:
    first: dict[str, str] = {}  # the first value of each header we need, folding kept
    for name, raw in header_fields(split_message(data)[0]):
        if name in _META_HEADERS and name not in first:
            first[name] = raw.split(b":", 1)[1].decode("utf-8", "surrogateescape").strip()
    key = _thread_key(first)
    threadid = "T" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24] if key else None
    return MessageMeta(sent_day=_sent_day(first.get("date")), threadid=threadid)
