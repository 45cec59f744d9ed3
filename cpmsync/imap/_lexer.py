"""Tokenizer from one complete logical IMAP line (literals inline) to raw values, and the writer.

Both parsers frame first (see `_framer`), so tokenizing never waits for data: the literal bytes
are already in `raw`. Nested parentheses use an explicit stack, never recursion.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from .errors import ImapProtocolError

RawValue: TypeAlias = str | bytes | list["RawValue"] | None
"""Atom/number -> str, quoted/literal -> bytes, NIL -> None, (...) -> list."""

# Atoms are lenient: IMAP flags (\Seen), list wildcards (* %), "]" (ASTRING-CHAR allows it) and
# sections (BODY[...]<0.10>) tokenize as one atom; a section may hold spaces and parentheses up
# to its "]". A "[" with no "]" after it is a plain ATOM-CHAR (a mailbox may be named "a[}").
_TOKEN = re.compile(
    rb"""
     (?P<sp>\ +)
    |(?P<open>\()
    |(?P<close>\))
    |(?P<quoted>"(?P<q>[^"\\\r\n]*(?:\\["\\][^"\\\r\n]*)*)")
    |(?P<literal>\{(?P<n>[0-9]{1,20})\+?\}\r?\n)
    |(?P<atom>(?:[!#-'*-Z\\\]^-z|}~]|\[[^\]\r\n]*\]|\[)+)
    """,
    re.X,
)
_UNESCAPE = re.compile(rb"\\([\"\\])")
_ATOM_RE = re.compile(rb"[!#$&'+-Z^-z|}~]+\Z")  # ATOM-CHAR (no specials, no wildcards, no "\")
_LIST_ATOM_RE = re.compile(rb"[!#-'*-Z^-z|}~]+\Z")  # list-mailbox: ATOM-CHAR plus % and *
_QUOTABLE_RE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTE_ESC = re.compile(rb'(["\\])')


class Adjacent(list["RawValue"]):
    """Items a writer puts back to back, with no SP and no parentheses of their own.

    For grammar rules without SP between parenthesized items (RFC 3501 `body-type-mpart =
    1*body SP media-subtype`, `env-from = "(" 1*address ")"`); a plain list always separates
    its items with SP. Used inside a list, never empty: `[Adjacent([part1, part2]), "MIXED"]`."""


MAX_QUOTED_BYTES = 1000
"""Longer strings are sent as literals (keeps lines short for peers with small line limits)."""


def unquote(q: bytes) -> bytes:
    return _UNESCAPE.sub(rb"\1", q) if b"\\" in q else q


# The same tokens as `_TOKEN` (same alternatives, same order), spaces folded in, for `findall`:
# group 1 is a token, group 2 a byte no token starts with (the caller then takes the checked path).
_RUN = re.compile(
    rb"""
     \ *(?:
     (\(|\)
    |"[^"\\\r\n]*(?:\\["\\][^"\\\r\n]*)*"
    |\{[0-9]{1,20}\+?\}\r?\n
    |(?:[!#-'*-Z\\\]^-z|}~]|\[[^\]\r\n]*\]|\[)+)
    |([\s\S]))
    """,
    re.X,
)


def tokenize(raw: bytes, pos: int, end: int) -> list[RawValue]:
    """Parse the values in raw[pos:end] (end = index of the final CRLF) into a list."""
    fast = _tokenize_runs(raw, pos, end)
    return tokenize_checked(raw, pos, end) if fast is None else fast


def _tokenize_runs(raw: bytes, pos: int, end: int) -> list[RawValue] | None:
    """`tokenize` for well-formed input, or None: then `tokenize_checked` finds the error.

    Tokens come from one C-speed `findall` per run of text between literals (a literal's
    `{n}\\r\\n` marker ends the run: no other token holds a LF), not one regex call per token.
    Exactly `tokenize_checked`'s values whenever it answers (tests/imap hold it to that)."""
    if end < len(raw) and raw[end] not in (13, 10):
        return None  # end inside a token: only the checked path says how it ends
    top: list[RawValue] = []
    cur = top
    stack: list[list[RawValue]] = []
    findall = _RUN.findall
    find = raw.find
    while pos < end:
        nl = find(b"\n", pos, end)
        stop = end if nl < 0 else nl + 1
        for tok, bad in findall(raw, pos, stop):
            if bad:
                return None
            c = tok[0]
            if c == 0x28:  # (
                new: list[RawValue] = []
                cur.append(new)
                stack.append(cur)
                cur = new
            elif c == 0x29:  # )
                if not stack:
                    return None
                cur = stack.pop()
            elif c == 0x22:  # "
                cur.append(_UNESCAPE.sub(rb"\1", tok[1:-1]) if b"\\" in tok else tok[1:-1])
            elif c == 0x7B:  # {n}: the last token of this run
                stop += int(tok[1 : tok.index(b"}")].rstrip(b"+"))
                if stop > end:
                    return None
                cur.append(raw[nl + 1 : stop])
            elif tok == b"NIL" or (len(tok) == 3 and tok.upper() == b"NIL"):
                cur.append(None)
            else:
                cur.append(tok.decode("ascii"))
        pos = stop
    return None if stack else top


def tokenize_checked(raw: bytes, pos: int, end: int) -> list[RawValue]:
    """The token-by-token tokenizer: the reference, and the one that names what is wrong."""
    top: list[RawValue] = []
    cur = top
    stack: list[list[RawValue]] = []
    match = _TOKEN.match
    while pos < end:
        m = match(raw, pos)
        if m is None:
            raise ImapProtocolError("unexpected character", position=pos, line=raw)
        kind = m.lastgroup
        npos = m.end()
        if kind == "atom":
            a = m.group()
            if a == b"NIL" or (len(a) == 3 and a.upper() == b"NIL"):
                cur.append(None)
            else:
                cur.append(a.decode("ascii"))
        elif kind == "sp":
            pass
        elif kind == "quoted":
            cur.append(unquote(m.group("q")))
        elif kind == "open":
            new: list[RawValue] = []
            cur.append(new)
            stack.append(cur)
            cur = new
        elif kind == "close":
            if not stack:
                raise ImapProtocolError("unbalanced ')'", position=pos, line=raw)
            cur = stack.pop()
        else:  # literal
            n = int(m.group("n"))
            if npos + n > end:
                raise ImapProtocolError("literal runs past end of line", position=pos, line=raw)
            cur.append(raw[npos : npos + n])
            npos += n
        if npos > end:
            raise ImapProtocolError("token runs past end of line", position=pos, line=raw)
        pos = npos
    if stack:
        raise ImapProtocolError("unbalanced '('", position=end, line=raw)
    return top


class Out:
    """Collects wire bytes; a synchronizing literal starts a new chunk (client waits for "+")."""

    __slots__ = ("chunks", "literal_plus", "parts", "split_sync")

    def __init__(self, *, literal_plus: bool = False, split_sync: bool = False) -> None:
        self.parts: list[bytes] = []
        self.chunks: list[bytes] = []
        self.literal_plus = literal_plus
        self.split_sync = split_sync

    def w(self, b: bytes) -> None:
        self.parts.append(b)

    def literal(self, data: bytes) -> None:
        if self.literal_plus:
            self.parts.append(b"{%d+}\r\n" % len(data))
        else:
            self.parts.append(b"{%d}\r\n" % len(data))
            if self.split_sync:
                self.chunks.append(b"".join(self.parts))
                self.parts.clear()
        self.parts.append(data)

    def string(self, data: bytes) -> None:
        """A quoted string, or a literal when quoting cannot carry the bytes."""
        if len(data) <= MAX_QUOTED_BYTES and _QUOTABLE_RE.match(data):
            self.parts.append(
                b'"' + (_QUOTE_ESC.sub(rb"\\\1", data) if b'"' in data or b"\\" in data else data) + b'"'
            )
        else:
            self.literal(data)

    def astring(self, data: bytes) -> None:
        if len(data) <= MAX_QUOTED_BYTES and _ATOM_RE.match(data) and data.upper() != b"NIL":
            self.parts.append(data)
        else:
            self.string(data)

    def list_mailbox(self, data: bytes) -> None:
        if len(data) <= MAX_QUOTED_BYTES and _LIST_ATOM_RE.match(data) and data.upper() != b"NIL":
            self.parts.append(data)
        else:
            self.string(data)

    def nstring(self, data: bytes | None) -> None:
        if data is None:
            self.parts.append(b"NIL")
        else:
            self.string(data)

    def id_params(self, params: tuple[tuple[str, str | None], ...] | None) -> None:
        """RFC 2971's `id-params-list`: NIL or `("key" "value" ...)` (the command's and the response's)."""
        if params is None:
            self.parts.append(b"NIL")
            return
        self.parts.append(b"(")
        for i, (k, v) in enumerate(params):
            if i:
                self.parts.append(b" ")
            self.string(enc(k))
            self.parts.append(b" ")
            self.nstring(None if v is None else enc(v))
        self.parts.append(b")")

    def raw_value(self, v: object) -> None:
        """Write a raw value back (explicit stack: no recursion on nesting depth). Besides
        RawValue it takes tuples (as lists) and ints (as numbers), which server code builds;
        an `Adjacent` writes its items with no separator and no parentheses."""
        stack: list[tuple[list[object], int, bytes, bytes]] = []
        items: list[object] = [v]
        i = 0
        sep, close = b" ", b""
        while True:
            if i >= len(items):
                if not stack:
                    return
                self.parts.append(close)
                items, i, sep, close = stack.pop()
                continue
            x = items[i]
            i += 1
            if i > 1:
                self.parts.append(sep)
            if isinstance(x, Adjacent):
                stack.append((items, i, sep, close))
                items, i, sep, close = list(x), 0, b"", b""
            elif isinstance(x, (list, tuple)):
                self.parts.append(b"(")
                stack.append((items, i, sep, close))
                items, i, sep, close = list(x), 0, b" ", b")"
            elif isinstance(x, str):
                self.parts.append(x.encode("ascii", "replace"))
            elif x is None:
                self.parts.append(b"NIL")
            elif isinstance(x, bool):
                raise TypeError("bool is not an IMAP value")
            elif isinstance(x, int):
                self.parts.append(b"%d" % x)
            elif isinstance(x, (bytes, bytearray)):
                self.string(bytes(x))
            else:
                raise TypeError(f"{type(x).__name__} is not an IMAP value")

    def finish(self) -> list[bytes]:
        self.chunks.append(b"".join(self.parts))
        self.parts.clear()
        return self.chunks


def enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def text_of(v: RawValue) -> str | None:
    """An astring as text (NIL is the word "NIL" there); None when `v` is a list, not a string."""
    if isinstance(v, bytes):
        return dec(v)
    if isinstance(v, str):
        return v
    if v is None:
        return "NIL"
    return None
