"""The text preview apps show: the decoded words of a message's first text part, not raw bytes.

The daemon fetches only a prefix of BODY[TEXT] (`[imap] preview_bytes`) plus the top-level
Content-Type / Content-Transfer-Encoding fields, so everything here must cope with a body cut
at any byte: a half base64 quantum, a half `=C3` escape, a half UTF-8 sequence, a multipart
whose text part never arrives. Pure and total: it returns text or None, it never raises. When
the prefix does not reach a readable text part the preview is None (no guessing).
"""

from __future__ import annotations

import binascii
import codecs
import email.parser
import email.policy
import functools
import html
import re
from dataclasses import dataclass
from email.message import Message

__all__ = ["MIME_FIELDS", "MimeInfo", "needs_more", "text_preview"]

MIME_FIELDS = ("CONTENT-TYPE", "CONTENT-TRANSFER-ENCODING")
"""The header fields the daemon fetches with the TEXT prefix to know how to decode it."""

_MAX_DEPTH = 5  # nested multiparts / CPIM wrappers followed before giving up
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_QP_TAIL = re.compile(rb"=[0-9A-Fa-f]?\r?$")
_TAG = re.compile(r"<[^>]*>?")


@dataclass(frozen=True)
class MimeInfo:
    """What a header block says about the body under it."""

    content_type: str = "text/plain"
    charset: str | None = None
    boundary: str | None = None
    encoding: str = "7bit"


@functools.lru_cache(maxsize=512)
def _parse_headers(raw: bytes) -> MimeInfo:
    # Cached: most messages of an account carry the same few header blocks, and the email
    # package's parser costs more than the rest of a preview.
    try:
        msg: Message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        ctype = msg.get_content_type() if msg.get("Content-Type") is not None else "text/plain"
        charset = msg.get_param("charset")
        boundary = msg.get_param("boundary")
        cte = str(msg.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    except Exception:  # a malformed header block must cost the preview, never the sync
        return MimeInfo()
    return MimeInfo(
        content_type=ctype.lower(),
        charset=charset if isinstance(charset, str) else None,
        boundary=boundary if isinstance(boundary, str) and boundary else None,
        encoding=cte or "7bit",
    )


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """(header block, body) at the first blank line; None when the prefix ends inside the header."""
    m = re.search(rb"\r?\n\r?\n", data)
    if m is None:
        return None
    return data[: m.end()], data[m.end() :]


def _undo_transfer(data: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            clean = _B64_JUNK.sub(b"", data)
            clean = clean[: len(clean) // 4 * 4]  # a cut quantum is dropped, not guessed
            return binascii.a2b_base64(clean)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(_QP_TAIL.sub(b"", data))
    except (binascii.Error, ValueError):
        return b""
    return data


_STRICT_FIRST = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii"}
"""Charsets almost every message declares: a plain strict decode, when the bytes allow it, gives
what the incremental decoder below gives, at a third of the cost."""


def _decode_charset(data: bytes, charset: str | None) -> str:
    name = charset or "utf-8"
    strict = _STRICT_FIRST.get(name.lower())
    if strict is not None:
        try:
            return data.decode(strict)
        except UnicodeDecodeError:
            pass  # a character cut by the prefix, or bytes the charset does not have
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        name = "utf-8"
    try:
        # final=False: a character cut by the prefix is left out instead of shown as U+FFFD
        return codecs.getincrementaldecoder(name)(errors="replace").decode(data, final=False)
    except Exception:  # exotic codecs may still refuse some input
        return data.decode("utf-8", errors="replace")


def _text_of(info: MimeInfo, body: bytes) -> str:
    text = _decode_charset(_undo_transfer(body, info.encoding), info.charset)
    if info.content_type == "text/html":
        text = html.unescape(_TAG.sub(" ", text))
    return text


def _strip_cut_delimiter(part: bytes, delim: bytes) -> bytes:
    """Drop a delimiter line the prefix cut in half (`...Welt\\r\\n--BO`)."""
    for k in range(min(len(delim), len(part)), 0, -1):
        if part.endswith(delim[:k]):
            return part[:-k]
    return part


def _multipart(boundary: str, body: bytes, depth: int) -> str | None:
    delim = b"--" + boundary.encode("utf-8", errors="replace")
    pieces = re.split(rb"(?:^|\r?\n)" + re.escape(delim), body)
    fallback: str | None = None
    for i, piece in enumerate(pieces[1:], start=1):
        if piece.startswith(b"--"):  # close delimiter
            break
        last = i == len(pieces) - 1
        if last:
            piece = _strip_cut_delimiter(piece, b"\r\n" + delim)
        # the rest of the delimiter line (transport padding), then the part's headers
        nl = piece.find(b"\n")
        if nl < 0:
            return fallback
        part = piece[nl + 1 :]
        if part[:1] == b"\n" or part[:2] == b"\r\n":  # no part headers: text/plain (RFC 2046 5.1)
            info, content = MimeInfo(), part[part.find(b"\n") + 1 :]
        else:
            split = _split_head(part)
            if split is None:
                return fallback
            info, content = _parse_headers(split[0]), split[1]
        ctype = info.content_type
        if ctype.startswith("multipart/") or ctype == "message/cpim":
            got = _extract(info, content, depth + 1)
            if got:
                return got
        elif ctype == "text/plain":
            return _extract(info, content, depth + 1)
        elif ctype.startswith("text/"):
            fallback = fallback or _extract(info, content, depth + 1)
    return fallback


def _extract(info: MimeInfo, body: bytes, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return None
    ctype = info.content_type
    if ctype.startswith("multipart/"):
        if info.boundary is None:
            return None
        return _multipart(info.boundary, _undo_transfer(body, info.encoding), depth)
    if ctype == "message/cpim":
        # RFC 3862: CPIM headers, blank line, MIME headers of the content, blank line, content
        outer = _split_head(_undo_transfer(body, info.encoding))
        inner = _split_head(outer[1]) if outer else None
        if inner is None:
            return None
        return _extract(_parse_headers(inner[0]), inner[1], depth + 1)
    if ctype.startswith("text/"):
        return _text_of(info, body)
    return None


def text_preview(mime_header: bytes | None, text_prefix: bytes | None, limit: int) -> str | None:
    """The first words of what a user would read, at most `limit` UTF-8 bytes, or None.

    `mime_header` is the fetched Content-Type / Content-Transfer-Encoding fields (None or empty:
    RFC 2045 defaults, text/plain us-ascii 7bit, decoded as UTF-8); `text_prefix` the first
    bytes of BODY[TEXT].
    """
    if text_prefix is None or limit <= 0:
        return None
    info = _parse_headers(mime_header) if mime_header else MimeInfo()
    try:
        text = _extract(info, text_prefix, 0)
    except Exception:  # last line of defence: a preview is never worth a failed sync
        text = None
    if not text:
        return None
    text = " ".join(text.split())
    if text.isascii():  # one byte per character: the same cut without a round trip through bytes
        cut = text[:limit].rstrip()
    else:
        cut = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore").rstrip()
    return cut or None


def needs_more(mime_header: bytes | None, text_prefix: bytes | None, limit: int, preview: str | None) -> bool:
    """True when a longer prefix could give a preview: a multipart/CPIM body cut before its text.

    Single-part bodies never need more (their prefix IS the text), nor bodies shorter than
    `limit` (they arrived whole).
    """
    if preview is not None or text_prefix is None or limit <= 0 or len(text_prefix) < limit:
        return False
    ctype = (_parse_headers(mime_header) if mime_header else MimeInfo()).content_type
    return ctype.startswith("multipart/") or ctype == "message/cpim"
