"""IMAP date and date-time strings (RFC 3501 `date-time`, `date`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from .errors import ImapProtocolError

__all__ = ["MONTH_NUMBER", "fixed_zone", "format_date", "format_datetime", "parse_date", "parse_datetime"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NUMBER = {m.upper(): i + 1 for i, m in enumerate(_MONTHS)}
"""`JAN` -> 1: the months of IMAP dates and of RFC 5322 Date headers alike."""
_DT_RE = re.compile(r" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d\d\d\d)\Z")
_D_RE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")


def format_datetime(dt: datetime) -> str:
    """`17-Jul-1996 02:44:25 -0700` (day space-padded to two characters, as RFC 3501 asks)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    off = dt.utcoffset() or timedelta(0)
    mins = int(off.total_seconds()) // 60
    sign = "-" if mins < 0 else "+"
    mins = abs(mins)
    return (
        f"{dt.day:2d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} "
        f"{sign}{mins // 60:02d}{mins % 60:02d}"
    )


_ZONES: dict[str, timezone] = {}  # "+0100" -> its timezone: a handful of distinct offsets per account


def fixed_zone(zone: str) -> timezone:
    """`+0100` as a timezone, one object per offset (`datetime.timezone.utc` for +0000, as the
    email package gives); ValueError when it is not a zone or is a day or more away from UTC."""
    tz = _ZONES.get(zone)
    if tz is None:
        if len(zone) != 5 or zone[0] not in "+-" or not zone[1:].isdigit() or not zone.isascii():
            raise ValueError(f"not a zone offset: {zone!r}")
        off = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))  # +0160 is +0200, as before
        tz = UTC if not off else timezone(-off if zone[0] == "-" else off)
        if len(_ZONES) < 1024:
            _ZONES[zone] = tz
    return tz


def parse_datetime(text: str) -> datetime:
    m = _DT_RE.match(text)
    month = MONTH_NUMBER.get(m.group(2).upper()) if m else None
    if m is None or month is None:
        raise ImapProtocolError("invalid date-time", position=0, line=text.encode("utf-8", "replace"))
    day, _, year, hh, mm, ss, zone = m.groups()
    try:
        return datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=fixed_zone(zone))
    except ValueError as e:
        raise ImapProtocolError(
            f"invalid date-time: {e}", position=0, line=text.encode("utf-8", "replace")
        ) from None


def format_date(d: date) -> str:
    """`1-Feb-1994` (SEARCH dates)."""
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year:04d}"


def parse_date(text: str) -> date:
    m = _D_RE.match(text)
    month = MONTH_NUMBER.get(m.group(2).upper()) if m else None
    if m is None or month is None:
        raise ImapProtocolError("invalid date", position=0, line=text.encode("utf-8", "replace"))
    try:
        return date(int(m.group(3)), month, int(m.group(1)))
    except ValueError as e:
        raise ImapProtocolError(
            f"invalid date: {e}", position=0, line=text.encode("utf-8", "replace")
        ) from None
