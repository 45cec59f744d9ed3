"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), both ways.

Values in the codec carry decoded names; only the wire form is mUTF-7. Plain ASCII names (the
common case: "Default", "tel:+15143457900", UUIDs) take a fast path without any transcoding.
"""

from __future__ import annotations

import binascii
import re

from .errors import ImapProtocolError

__all__ = ["decode_mailbox", "encode_mailbox"]

_PLAIN = re.compile(r"[\x20-\x25\x27-\x7e]*\Z")
_PLAIN_B = re.compile(rb"[\x20-\x25\x27-\x7e]*\Z")
_SHIFT = re.compile(r"&([A-Za-z0-9+,]*)-")


def _b64(run: str) -> str:
    data = run.encode("utf-16-be", "surrogatepass")
    return binascii.b2a_base64(data, newline=False).decode("ascii").rstrip("=").replace("/", ",")


def encode_mailbox(name: str) -> str:
    """Encode a Unicode mailbox name to its ASCII wire form ("Entwürfe" -> "Entw&APw-rfe")."""
    if _PLAIN.match(name):
        return name
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if "\x20" <= ch <= "\x7e":
            if run:
                out.append("&" + _b64("".join(run)) + "-")
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append("&" + _b64("".join(run)) + "-")
    return "".join(out)


def _decode_run(b64: str, name: str, pos: int) -> str:
    if not b64:
        return "&"
    pad = "=" * (-len(b64) % 4)
    try:
        raw = binascii.a2b_base64((b64.replace(",", "/") + pad).encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        raise ImapProtocolError(
            "invalid modified UTF-7 in mailbox name", position=pos, line=name.encode("latin-1", "replace")
        ) from None
    if len(raw) % 2:
        raise ImapProtocolError(
            "modified UTF-7 run has an odd byte count", position=pos, line=name.encode("latin-1", "replace")
        )
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ImapProtocolError(
            "modified UTF-7 run is not valid UTF-16", position=pos, line=name.encode("latin-1", "replace")
        ) from None


def decode_mailbox(name: str | bytes) -> str:
    """Decode a wire mailbox name; raise ImapProtocolError if it is not valid modified UTF-7."""
    if isinstance(name, bytes):
        if _PLAIN_B.match(name):
            return name.decode("ascii")
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError as e:
            raise ImapProtocolError("8-bit byte in mailbox name", position=e.start, line=e.object) from None
    elif _PLAIN.match(name):
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        j = name.find("&", i)
        if j < 0:
            j = n
        seg = name[i:j]
        if seg and not _PLAIN.match(seg):
            bad = next(k for k, c in enumerate(seg) if not "\x20" <= c <= "\x7e")
            raise ImapProtocolError(
                "non-printable character in mailbox name",
                position=i + bad,
                line=name.encode("utf-8", "replace"),
            )
        out.append(seg)
        if j == n:
            break
        m = _SHIFT.match(name, j)
        if m is None:
            raise ImapProtocolError(
                "unterminated modified UTF-7 shift", position=j, line=name.encode("utf-8", "replace")
            )
        out.append(_decode_run(m.group(1), name, j))
        i = m.end()
    return "".join(out)
