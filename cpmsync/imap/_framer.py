"""Splits a byte stream into logical IMAP lines: a line plus any literals it announces.

Shared by both parsers. Work per line is a couple of `bytearray.find` calls, never a Python
loop over bytes. Limits are enforced before buffering; a violation raises ImapLimitError and
the rest of that logical line is skipped (streamed away, never stored) so the next line parses.
"""

from __future__ import annotations

import re

from .errors import ImapLimitError

DEFAULT_MAX_LINE_BYTES = 65_536
"""Dovecot's imap_max_line_length default (64 KiB); one line without its literals."""
DEFAULT_MAX_LITERAL_BYTES = 64 * 2**20
"""One literal (APPEND message or BODY[] section); 64 MiB covers CPM file-transfer messages."""
DEFAULT_MAX_MESSAGE_BYTES = 128 * 2**20
"""A whole logical line including all its literals (a FETCH with several BODY[] sections)."""

_MARKER_MAX = 24  # len("{" + 20 digits + "+}\r")
_LIT_TAIL = re.compile(rb"\{([0-9]{1,20})(\+?)\}\r?\n\Z")


class Framer:
    """State: the current logical line starts at `_start` in `_buf`; `_scan` is where to look next."""

    __slots__ = (
        "_buf",
        "_discard",
        "_lit_left",
        "_max_line",
        "_max_lit",
        "_max_msg",
        "_max_nonsync",
        "_pending_cont",
        "_plus_line",
        "_raw_line",
        "_scan",
        "_seg",
        "_start",
        "plus_lines_raw",
    )

    def __init__(
        self,
        max_line_bytes: int,
        max_literal_bytes: int,
        max_message_bytes: int,
        max_nonsync_literal_bytes: int | None = None,
    ) -> None:
        self._buf = bytearray()
        self._start = 0  # start of current logical line
        self._seg = 0  # start of the current text segment (after the last literal)
        self._scan = 0  # where to search for the next LF
        self._lit_left = 0  # literal bytes still to come
        self._discard = False  # skipping the rest of an over-limit logical line
        self._pending_cont: int | None = None
        self._raw_line = False
        self._max_line = max_line_bytes
        self._max_lit = max_literal_bytes
        self._max_msg = max_message_bytes
        self._max_nonsync = max_nonsync_literal_bytes
        self.plus_lines_raw = False  # response side: "+ text {5}" is a continuation, not a literal
        self._plus_line = False  # the line being discarded is raw or "+": no literal processing

    def feed(self, data: bytes) -> None:
        buf = self._buf
        if self._start:
            del buf[: self._start]
            self._seg -= self._start
            self._scan -= self._start
            self._start = 0
        buf += data

    def take_buffered(self) -> bytes:
        out = bytes(self._buf[self._start :])
        self._buf.clear()
        self._start = self._seg = self._scan = self._lit_left = 0
        self._discard = False
        return out

    def expect_raw_line(self) -> None:
        self._raw_line = True

    def current_line_head(self) -> bytes:
        """The first bytes of the logical line being framed (to name its tag in events)."""
        return bytes(self._buf[self._start : self._start + 256])

    def pop_continuation(self) -> int | None:
        """Size of a synchronizing literal just announced (command side answers "+")."""
        n = self._pending_cont
        self._pending_cont = None
        return n

    def next_frame(self, *, sync_literals_stop: bool) -> bytes | None:
        """The next complete logical line (with CRLF and literals), or None if more data is needed.

        sync_literals_stop: command side; a `{n}` literal records a pending continuation and
        returns None once so the caller can emit it before waiting for the literal bytes (the
        client sends them only after our "+"). A refused `{n}` therefore ends the logical line.
        """
        buf = self._buf
        while True:
            if self._lit_left:
                avail = len(buf) - self._scan
                if avail < self._lit_left:
                    if self._discard:
                        self._lit_left -= avail
                        del buf[self._scan :]
                    return None
                self._scan += self._lit_left
                self._seg = self._scan
                self._lit_left = 0
                if self._discard:
                    self._start = self._scan
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                if self._discard:
                    self._skip_keeping_tail()
                    return None
                if len(buf) - self._seg > self._max_line + 1:  # +1: the CR of a CRLF may be in
                    err = self._error(
                        b"line exceeds max_line_bytes (%d)" % self._max_line, self._seg + self._max_line
                    )
                    self._plus_line = self._no_literals_here()
                    self._discard = True
                    self._skip_keeping_tail()
                    raise err
                self._scan = len(buf)
                return None
            end = nl + 1
            if not self._discard and end - self._seg > self._max_line + 2:
                err = self._error(
                    b"line exceeds max_line_bytes (%d)" % self._max_line, self._seg + self._max_line
                )
                # rescan this line's tail (no LF in it) so its literal marker is still seen
                tail = max(self._seg, nl - _MARKER_MAX)
                self._plus_line = self._no_literals_here()
                self._discard = True
                self._start = self._seg = self._scan = tail
                raise err
            if self._raw_line and not self._discard:
                self._raw_line = False
                line = bytes(buf[self._start : end])
                self._start = self._seg = self._scan = end
                return line
            if (
                nl > 0
                and buf[nl - 1 - (buf[nl - 1] == 13)] == 0x7D  # '}' before CRLF
                and not (self._plus_line if self._discard else self._starts_plus())
            ):
                m = _LIT_TAIL.search(buf, max(self._seg, nl - _MARKER_MAX - 1), end)
                if m is not None:
                    n = int(m.group(1))
                    sync = sync_literals_stop and not m.group(2)
                    self._scan = self._seg = end
                    if self._discard:
                        if not sync:
                            self._lit_left = n
                            self._start = end
                            continue
                    elif (
                        n > self._max_lit
                        or end - self._start + n > self._max_msg
                        or (
                            sync_literals_stop
                            and not sync
                            and self._max_nonsync is not None
                            and n > self._max_nonsync
                        )
                    ):
                        if n > self._max_lit:
                            what = b"literal exceeds max_literal_bytes (%d)" % self._max_lit
                        elif end - self._start + n > self._max_msg:
                            what = b"line exceeds max_message_bytes (%d)" % self._max_msg
                        else:
                            what = b"non-synchronizing literal exceeds %d bytes" % (self._max_nonsync or 0)
                        err = self._error(what, m.start())
                        if sync:  # refused before the client sent it: the line ends here
                            self._start = end
                        else:
                            self._enter_discard()
                            self._lit_left = n
                        raise err
                    else:
                        self._lit_left = n
                        if sync:
                            self._pending_cont = n
                            return None
                        continue
            if self._discard:
                self._discard = False
                self._start = self._seg = self._scan = end
                continue
            line = bytes(buf[self._start : end])
            self._start = self._seg = self._scan = end
            return line

    def _skip_keeping_tail(self) -> None:
        """Drop discarded bytes (feed() compacts them away) but keep a tail long enough to hold
        a `{n+}` literal marker, so the line end is judged the same however the bytes arrived."""
        keep_from = max(self._seg, len(self._buf) - _MARKER_MAX)
        self._start = self._seg = self._scan = keep_from

    def _no_literals_here(self) -> bool:
        """An over-long line being discarded: is it one whose `{n}` ending is text, not a literal?
        True for a raw-mode line (its one-shot expectation is used up here) and a "+" line."""
        if self._raw_line:
            self._raw_line = False
            return True
        return self._starts_plus()

    def _starts_plus(self) -> bool:
        """Response side: the logical line is a continuation request, whose text is never a literal."""
        return (
            self.plus_lines_raw
            and self._seg == self._start
            and self._start < len(self._buf)
            and self._buf[self._start] == 0x2B
        )

    def _enter_discard(self) -> None:
        self._plus_line = False  # only called after a literal marker: not a "+" line
        self._discard = True
        self._start = self._seg = self._scan

    def _error(self, why: bytes, at: int) -> ImapLimitError:
        """`at` is a buffer index; the error reports it relative to the logical line's start."""
        head = bytes(self._buf[self._start : self._start + 1024])
        return ImapLimitError(why.decode(), position=at - self._start, line=head)
