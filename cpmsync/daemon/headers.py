"""Header text as apps should see it: RFC 2047 words decoded, CPM `tel:` senders whole.

ENVELOPE carries header values undecoded (RFC 3501 7.4.2), so subjects and display names arrive
as `=?utf-8?q?caf=C3=A9?=`. And an address like `<tel:+15143457900>` is not an RFC 5322
addr-spec: servers disagree on its ENVELOPE form (Dovecot: `(NIL NIL "tel" "SYNTAX_ERROR")`),
so when ENVELOPE yields no usable address the raw From/To header field is read instead.
"""

from __future__ import annotations

import email.utils
import re
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from cpmsync.imap import Address, Envelope
from cpmsync.imap.datetimes import MONTH_NUMBER, fixed_zone

__all__ = [
    "HEADER_FIELDS",
    "decode_words",
    "envelope_addresses",
    "field_addresses",
    "garbled_envelope",
    "header_addresses",
    "header_date",
    "header_fields",
    "usable",
]

HEADER_FIELDS = ("FROM", "TO")
"""Fetched raw (BODY.PEEK[HEADER.FIELDS (FROM TO)]) for messages whose ENVELOPE is garbled."""

# Hosts servers put in ENVELOPE for an address they could not parse (Dovecot, UW-IMAP).
_BAD_HOSTS = {"SYNTAX_ERROR", "MISSING_DOMAIN", ".SYNTAX-ERROR.", ".MISSING-HOST-NAME."}
_ANGLE = re.compile(r"^(.*?)<([^<>]*)>\s*$", re.S)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


# RFC 5322 3.3's date-time as nearly every sender writes it: `Fri, 4 Dec 2026 12:00:05 +0100`.
_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9]\d{3}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})\Z",  # years below 100 mean 19xx or 20xx there
    re.ASCII,  # other scripts' digits, which the email package also reads, take its path
)


def header_date(text: str | None) -> datetime | None:
    """A Date header's value as the email package reads it (None when it cannot), the common form
    by one regex: email.utils' general parser was a twentieth of a first sync's CPU."""
    if not text:
        return None
    m = _DATE.match(text)
    if m is not None and m.group(7) != "-0000":  # -0000: "no zone known", naive in the email package
        day, mon, year, hh, mm, ss, zone = m.groups()
        try:
            return datetime(
                int(year),
                MONTH_NUMBER[mon.upper()],
                int(day),
                int(hh),
                int(mm),
                int(ss),
                tzinfo=fixed_zone(zone),
            )
        except ValueError:
            return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def decode_words(value: str | None) -> str | None:
    """RFC 2047 encoded-words decoded; the value unchanged when it has none or is malformed."""
    if not value or "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def usable(addrs: tuple[Address, ...] | None) -> bool:
    """ENVELOPE addresses an app can show: present, and none a server's parse-error placeholder."""
    if not addrs:
        return False
    return not any(a.host is not None and a.host.upper() in _BAD_HOSTS for a in addrs)


def garbled_envelope(env: Envelope) -> bool:
    """From or To holds a server's parse-error placeholder: read the raw header fields instead."""
    return any(
        a.host is not None and a.host.upper() in _BAD_HOSTS for a in (env.from_ or ()) + (env.to or ())
    )


def envelope_addresses(a: tuple[Address, ...] | None) -> str | None:
    """ENVELOPE addresses as one header-like string; RFC 3501 7.4.2 group markers become "g: ...;"."""
    if not a:
        return None
    out: list[str] = []
    group: str | None = None
    members: list[str] = []
    for i, x in enumerate(a):
        if x.host is None and x.mailbox is None:  # end of group
            if group is not None:
                out.append(f"{group}: {', '.join(members)};")
                group, members = None, []
            continue
        ends = any(y.host is None and y.mailbox is None for y in a[i + 1 :])
        if x.host is None and group is None and ends:  # start of group: mailbox is its name
            group = decode_words(x.mailbox)
            continue
        mail = f"{x.mailbox or ''}@{x.host}" if x.host else (x.mailbox or "")
        name = decode_words(x.name)
        (members if group is not None else out).append(f"{name} <{mail}>" if name else mail)
    return ", ".join(out) or None


def _split(value: str) -> list[str]:
    """Split an address list at commas outside quotes and angle brackets."""
    if "," not in value:  # one address (most messages): nothing to split
        value = value.strip()
        return [value] if value else []
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if quoted:
            quoted = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def header_fields(raw: bytes) -> dict[str, str]:
    """A raw header block's fields, by upper-case name (unfolded; a repeated field's values joined
    with ", "): read once for both From and To."""
    text = _FOLD.sub("", raw.decode("utf-8", errors="replace"))
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().upper()
            value = value.strip()
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def field_addresses(value: str | None) -> str | None:
    """A raw From/To field value as the same string form as ENVELOPE gives (`envelope_addresses`)."""
    if not value:
        return None
    out: list[str] = []
    for part in _split(value):
        m = _ANGLE.match(part)
        if m is None:
            out.append(part)
            continue
        name = m.group(1).strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        name = decode_words(name) or ""
        addr = m.group(2).strip()
        out.append(f"{name} <{addr}>" if name else addr)
    return ", ".join(out) or None


def header_addresses(raw: bytes | None, field: str) -> str | None:
    """The `field` (From/To) of a raw header block as the same string form as ENVELOPE gives."""
    return field_addresses(header_fields(raw).get(field.upper())) if raw else None
