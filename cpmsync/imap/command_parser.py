"""Incremental client-command parser (the server side), h11 style.

    p = CommandParser()
    p.feed(data)
    while (ev := p.next_event()) is not NEED_DATA:
        ContinuationNeeded -> write b"+ Ready\\r\\n";  Command -> execute;  RawLine -> DONE / SASL

Errors carry the tag when one was read, so the server can answer `tag BAD ...`; the offending
command is consumed first and the parser continues with the next line. Which reader types a
command's arguments comes from `command_specs`.
"""

from __future__ import annotations

import re

from ._framer import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LITERAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES, Framer
from ._lexer import tokenize
from ._readers import Args, BadArgs, BadMailboxName
from .command_specs import BY_NAME, UID_NAMES
from .commands import Command
from .errors import (
    BadCommandError,
    ImapLimitError,
    ImapProtocolError,
    InvalidMailboxNameError,
    UnknownCommandError,
)
from .events import NEED_DATA, ContinuationNeeded, NeedData, RawLine

__all__ = ["CommandParser", "parse_command"]

_TAG_RE = re.compile(rb"([!#$&',-\[\]-z|}~]+) ")
_NAME_RE = re.compile(rb"([A-Za-z][A-Za-z0-9-]*)(?= |\r?\n\Z)")


def _tag_of(raw: bytes) -> str | None:
    m = _TAG_RE.match(raw)
    return m.group(1).decode("ascii") if m else None


def parse_command(raw: bytes) -> Command:
    """Type one complete logical command line (CRLF and inline literals included)."""
    end = len(raw) - (2 if raw.endswith(b"\r\n") else 1)
    m = _TAG_RE.match(raw)
    if m is None:
        raise ImapProtocolError("expected a tag followed by a space", position=0, line=raw)
    tag = m.group(1).decode("ascii")
    pos = m.end()
    nm = _NAME_RE.match(raw, pos)
    if nm is None:
        raise BadCommandError("expected a command name", command="", position=pos, line=raw, tag=tag)
    name = nm.group(1).decode("ascii").upper()
    pos = nm.end()
    uid = False
    if name == "UID":
        nm = _NAME_RE.match(raw, pos + 1)
        sub = nm.group(1).decode("ascii").upper() if nm else ""
        if nm is None or sub not in UID_NAMES:
            raise BadCommandError(
                "UID must be followed by EXPUNGE, SEARCH, FETCH, STORE, COPY or MOVE",
                command="UID",
                position=pos + 1,
                line=raw,
                tag=tag,
            )
        name = sub
        uid = True
        pos = nm.end()
    spec = BY_NAME.get(name)
    if spec is None:
        raise UnknownCommandError(
            f"unknown command {name}", command=name, position=m.end(), line=raw, tag=tag
        )
    try:
        vals = tokenize(raw, pos, end)
        return spec.parse(tag, Args(vals, 0, name), uid)
    except BadMailboxName as e:
        raise InvalidMailboxNameError(f"{name}: {e}", command=name, position=pos, line=raw, tag=tag) from None
    except BadArgs as e:
        raise BadCommandError(f"{name}: {e}", command=name, position=pos, line=raw, tag=tag) from None
    except ImapProtocolError as e:
        raise BadCommandError(
            f"{name}: {e.message}", command=name, position=e.position, line=raw, tag=tag
        ) from None
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as e:
        raise BadCommandError(f"{name}: malformed arguments ({e})", command=name, line=raw, tag=tag) from None


class CommandParser:
    """Feed client bytes in any chunking; take typed commands and continuation signals out."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_nonsync_literal_bytes: int | None = None,
    ) -> None:
        """max_nonsync_literal_bytes: None accepts `{n+}` up to max_literal_bytes (LITERAL+),
        4096 is LITERAL- (RFC 7888), 0 refuses them (a server advertising neither). A refused
        one raises ImapLimitError and its bytes, which the client sends anyway, are skipped."""
        self._framer = Framer(max_line_bytes, max_literal_bytes, max_message_bytes, max_nonsync_literal_bytes)
        self._raw_mode = False

    def feed(self, data: bytes) -> None:
        self._framer.feed(data)

    def expect_raw_line(self) -> None:
        """Deliver the next line as RawLine, without literal processing (DONE, SASL data)."""
        self._raw_mode = True
        self._framer.expect_raw_line()

    def next_event(self) -> Command | ContinuationNeeded | RawLine | NeedData:
        """The next event or NEED_DATA; errors are raised after the bad command is consumed."""
        fr = self._framer
        while True:
            try:
                raw = fr.next_frame(sync_literals_stop=True)
            except ImapLimitError as e:
                if self._raw_mode:  # the raw line itself was too long: the expectation is used up
                    self._raw_mode = False
                else:
                    e.tag = _tag_of(e.line)
                raise
            if raw is None:
                size = fr.pop_continuation()
                if size is not None:
                    return ContinuationNeeded(_tag_of(fr.current_line_head()), size)
                return NEED_DATA
            if self._raw_mode:
                self._raw_mode = False
                return RawLine(raw[: len(raw) - (2 if raw.endswith(b"\r\n") else 1)])
            if raw in (b"\r\n", b"\n"):
                continue  # some clients send empty lines (keep-alive); nothing to answer
            return parse_command(raw)

    def take_buffered(self) -> bytes:
        """Remove and return the bytes not parsed yet (they follow a COMPRESS/STARTTLS switch)."""
        return self._framer.take_buffered()
