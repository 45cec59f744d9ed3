"""FETCH data from stored message bytes: ENVELOPE, BODYSTRUCTURE and BODY[section] (RFC 3501 6.4.5, 7.4.2).

Works on the raw bytes with a small MIME splitter of its own, so a section is the exact byte
range of the stored message (what a client hashes or resumes with partial fetches), and a
malformed message still gets an answer instead of an exception.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from cpmsync.imap import Address, Adjacent, Envelope, FetchBody, RawValue

__all__ = ["MimePart", "body_section", "bodystructure", "envelope", "parse_mime"]

_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_FIELD_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_FOLD_RE = re.compile(r"\r?\n[ \t]")  # a folded header line's break
_PARAM_SPLIT_RE = re.compile(r";(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)")  # a ";" outside quotes


@dataclass(slots=True)
class MimePart:
    """One MIME entity: where its header and body sit in the message bytes."""

    raw: bytes
    header: bytes  # including the blank line that ends it
    body: bytes
    ctype: str = "text"
    csubtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    children: list[MimePart] = field(default_factory=list)
    message: MimePart | None = None  # the enclosed message of a message/rfc822 part


def _split_header(raw: bytes) -> tuple[bytes, bytes]:
    if raw.startswith((b"\r\n", b"\n")):
        n = 2 if raw.startswith(b"\r\n") else 1
        return raw[:n], raw[n:]
    m = _HEADER_END_RE.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.end()], raw[m.end() :]


def header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, full raw field bytes incl. folded lines and CRLF) in order."""
    out: list[tuple[str, bytes]] = []
    lines = header.splitlines(keepends=True)
    cur_name: str | None = None
    cur: list[bytes] = []
    for line in lines:
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and cur_name is not None:
            cur.append(line)
            continue
        if cur_name is not None:
            out.append((cur_name, b"".join(cur)))
        m = _FIELD_RE.match(line)
        cur_name = m.group(1).decode("ascii", "replace").lower() if m else None
        cur = [line]
    if cur_name is not None:
        out.append((cur_name, b"".join(cur)))
    return out


@functools.lru_cache(maxsize=256)
def _first_fields(header: bytes) -> dict[str, bytes]:
    """Name -> raw bytes of its first field. ENVELOPE and BODYSTRUCTURE ask a header block for a
    dozen names, and a client often fetches both: the block is split once. Read-only."""
    first: dict[str, bytes] = {}
    for n, raw in header_fields(header):
        first.setdefault(n, raw)
    return first


def _field_value(header: bytes, name: str) -> str | None:
    raw = _first_fields(header).get(name)
    if raw is None:
        return None
    value = raw.split(b":", 1)[1]
    return _FOLD_RE.sub(" ", value.decode("utf-8", "surrogateescape")).strip()


def _params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """`text/plain; charset="utf-8"` -> ("text/plain", [("CHARSET", "utf-8")])."""
    parts = _PARAM_SPLIT_RE.split(value)
    main = parts[0].strip().lower()
    params: list[tuple[str, str]] = []
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            continue
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params.append((k.strip().upper(), v))
    return main, params


def parse_mime(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> MimePart:
    """Split `raw` into a MIME tree; never raises, nesting is bounded."""
    header, body = _split_header(raw)
    ctype_value = _field_value(header, "content-type")
    main, params = _params(ctype_value) if ctype_value else (default_type, [])
    if main == "text/plain" and not ctype_value:
        params = [("CHARSET", "us-ascii")]
    typ, _, sub = main.partition("/")
    if not sub:
        typ, sub, params = "text", "plain", [("CHARSET", "us-ascii")]
    elif typ == "text" and not params:
        params = [("CHARSET", "us-ascii")]  # RFC 2045 5.2 default, written out as Dovecot does
    part = MimePart(raw=raw, header=header, body=body, ctype=typ, csubtype=sub, params=params)
    if depth > 20:
        return part
    if typ == "multipart":
        boundary = dict(params).get("BOUNDARY")
        if boundary:
            child_default = "message/rfc822" if sub == "digest" else "text/plain"
            for chunk in _split_multipart(body, boundary.encode("utf-8", "surrogateescape")):
                part.children.append(parse_mime(chunk, child_default, depth + 1))
    elif typ == "message" and sub == "rfc822":
        part.message = parse_mime(body, "text/plain", depth + 1)
    return part


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delim = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    chunks: list[bytes] = []
    start: int | None = None
    for m in delim.finditer(body):
        if start is not None:
            chunks.append(body[start : m.start()])
        if m.group(1):
            return chunks
        start = m.end()
    if start is not None:
        chunks.append(body[start:])
    return chunks


def _nstr(s: str | None) -> bytes | None:
    return None if s is None else s.encode("utf-8", "surrogateescape")


_ATOM_STOP = frozenset(' \t\r\n"(<>:;@,[')


def _address_tokens(value: str) -> list[tuple[str, str]]:
    """RFC 5322 lexical tokens: ("a", atom-or-dot-run), ("q", unquoted string), ("c", comment),
    ("<", angle-addr content taken whole, so `<tel:+1…>` keeps its ":"), or a special itself."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == '"' or c == "(":
            close, depth, buf = ('"', 0, []) if c == '"' else (")", 1, [])
            i += 1
            while i < n:
                d = value[i]
                if d == "\\" and i + 1 < n:
                    buf.append(value[i + 1])
                    i += 2
                    continue
                i += 1
                if c == "(" and d == "(":
                    depth += 1
                elif d == close:
                    depth -= 1
                    if depth <= 0:
                        break
                buf.append(d)
            out.append(("q" if c == '"' else "c", "".join(buf)))
        elif c == "<":
            j = value.find(">", i + 1)
            j = n if j < 0 else j
            out.append(("<", value[i + 1 : j].strip()))
            i = j + 1
        elif c in ">:;@,":
            out.append((c, c))
            i += 1
        elif c == "[":
            j = value.find("]", i + 1)
            j = n - 1 if j < 0 else j
            out.append(("a", value[i : j + 1]))
            i = j + 1
        else:
            j = i
            while j < n and value[j] not in _ATOM_STOP:
                j += 1
            out.append(("a", value[i:j]))
            i = j
    return out


def _angle_address(name: str | None, spec: str) -> Address:
    """An angle-addr: `[@route:]local@domain`, or a URI such as CPM's `tel:+15143457900`."""
    adl: str | None = None
    if "(" in spec:  # comments inside the angle brackets: `<user (c)@ (c) host>` is user@host
        spec = "".join(t for k, t in _address_tokens(spec) if k != "c")
    if spec.startswith("@") and ":" in spec:
        adl, _, spec = spec.partition(":")
    # Without "@" the whole URI is the mailbox and the host is "", not NIL: a NIL host with a
    # mailbox is an RFC 3501 group-start marker.
    mailbox, _, host = spec.rpartition("@") if "@" in spec else (spec, "", "")
    return Address(name, adl, mailbox, host)


def _addresses(value: str | None) -> tuple[Address, ...] | None:
    """RFC 5322 address-list as RFC 3501 7.4.2 addresses, groups included: `Team: a@x, b@x;`
    gives (NIL NIL "Team" NIL) … (NIL NIL NIL NIL). Lenient: never raises on bad input."""
    if not value:
        return None
    toks = _address_tokens(value)
    out: list[Address] = []
    in_group = False
    i = 0
    while i < len(toks):
        words: list[tuple[str, str]] = []
        comments: list[str] = []
        angle: str | None = None
        while i < len(toks) and toks[i][0] not in (",", ";") and not (toks[i][0] == ":" and not in_group):
            kind, text = toks[i]
            i += 1
            if kind == "<":
                angle = text
            elif kind == "c":
                comments.append(text)
            elif kind != ">" and angle is None:
                words.append((kind, text))
        delim = toks[i][0] if i < len(toks) else ""
        i += 1
        phrase = " ".join(t for k, t in words if k in ("a", "q")) or None
        if delim == ":":
            out.append(Address(None, None, phrase or "", None))
            in_group = True
            continue
        if angle is not None:
            out.append(_angle_address(phrase, angle))
        elif words:
            spec = "".join(t for _, t in words)
            mailbox, _, host = spec.rpartition("@") if "@" in spec else (spec, "", "")
            out.append(Address(comments[-1] if comments else None, None, mailbox, host))
        if delim == ";" and in_group:
            out.append(Address(None, None, None, None))
            in_group = False
    if in_group:
        out.append(Address(None, None, None, None))
    return tuple(out) or None


def address_search_text(value: str) -> str:
    """An address header as SEARCH FROM/TO/CC/BCC matches it (as Dovecot does): each address as
    `Name <local@host>`, a group as `group: ... ;`, comments and folding gone."""
    parts: list[str] = []
    for a in _addresses(value) or ():
        if a.host is None:
            parts.append(";" if a.mailbox is None else f"{a.mailbox}:")
            continue
        spec = f"{a.mailbox}@{a.host}" if a.host else a.mailbox or ""
        parts.append(f"{a.name} <{spec}>" if a.name else spec)
    return " ".join(parts)


def envelope(raw: bytes) -> Envelope:
    """RFC 3501 7.4.2 ENVELOPE; header values as they are on the wire (still RFC 2047 encoded)."""
    header, _ = _split_header(raw)

    def get(name: str) -> str | None:
        return _field_value(header, name)

    from_ = _addresses(get("from"))
    sender = _addresses(get("sender")) or from_
    reply_to = _addresses(get("reply-to")) or from_
    return Envelope(
        date=get("date"),
        subject=get("subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=_addresses(get("to")),
        cc=_addresses(get("cc")),
        bcc=_addresses(get("bcc")),
        in_reply_to=get("in-reply-to"),
        message_id=get("message-id"),
    )


def _lines(b: bytes) -> int:
    """Text lines as Dovecot counts them: line ends. A part's last CRLF before the next boundary
    belongs to the boundary (RFC 2046 5.1.1) and is not in `b`, so its last line does not count."""
    return b.count(b"\n")


def bodystructure(part: MimePart, extensible: bool = True) -> RawValue:
    """BODYSTRUCTURE (extensible=True) or BODY (False) as a raw value for FetchData."""
    if part.children:
        # body-type-mpart = 1*body SP media-subtype: no SP between the parts (RFC 3501 9).
        inner: list[RawValue] = [Adjacent([bodystructure(c, extensible) for c in part.children])]
        inner.append(_nstr(part.csubtype.upper()))
        if extensible:
            inner.append(_param_list(part.params))
            inner += [_disposition(part), _language(part), None]
        return inner
    cte = (_field_value(part.header, "content-transfer-encoding") or "7BIT").upper()
    out: list[RawValue] = [
        _nstr(part.ctype.upper()),
        _nstr(part.csubtype.upper()),
        _param_list(part.params),
        _nstr(_field_value(part.header, "content-id")),
        _nstr(_field_value(part.header, "content-description")),
        _nstr(cte),
        str(len(part.body)),
    ]
    if part.ctype == "message" and part.csubtype == "rfc822" and part.message is not None:
        env = envelope(part.body)
        out += [_envelope_raw(env), bodystructure(part.message, extensible), str(_lines(part.body))]
    elif part.ctype == "text":
        out.append(str(_lines(part.body)))
    if extensible:
        out += [_nstr(_field_value(part.header, "content-md5")), _disposition(part), _language(part), None]
    return out


def _param_list(params: list[tuple[str, str]]) -> RawValue:
    if not params:
        return None
    flat: list[RawValue] = []
    for k, v in params:
        flat += [_nstr(k), _nstr(v)]
    return flat


def _disposition(part: MimePart) -> RawValue:
    value = _field_value(part.header, "content-disposition")
    if not value:
        return None
    main, params = _params(value)
    return [_nstr(main.upper()), _param_list(params)]


def _language(part: MimePart) -> RawValue:
    value = _field_value(part.header, "content-language")
    if not value:
        return None
    # RFC 3066 tags, comma separated; a list like Dovecot's (RFC 3501 allows nstring or list).
    tags: list[RawValue] = [_nstr(t.strip()) for t in value.split(",") if t.strip()]
    return tags or None


def _envelope_raw(e: Envelope) -> RawValue:
    def addrs(a: tuple[Address, ...] | None) -> RawValue:
        if a is None:
            return None
        # env-from = "(" 1*address ")": no SP between addresses (RFC 3501 9).
        return [Adjacent([[_nstr(x.name), _nstr(x.adl), _nstr(x.mailbox), _nstr(x.host)] for x in a])]

    return [
        _nstr(e.date),
        _nstr(e.subject),
        addrs(e.from_),
        addrs(e.sender),
        addrs(e.reply_to),
        addrs(e.to),
        addrs(e.cc),
        addrs(e.bcc),
        _nstr(e.in_reply_to),
        _nstr(e.message_id),
    ]


def _subpart(msg: MimePart, n: int) -> MimePart | None:
    """Body part n of a message: a child of a multipart; of any other message, part 1 is the
    message itself (its body) (RFC 3501 6.4.5)."""
    if msg.ctype == "multipart":
        return msg.children[n - 1] if 1 <= n <= len(msg.children) else None
    return msg if n == 1 else None


def _find_part(root: MimePart, path: tuple[int, ...]) -> MimePart | None:
    """The part a section number names. Inside a message/rfc822 part the numbers continue with
    the enclosed message's parts: `1.1` of a message/rfc822 part 1 is that message's part 1."""
    part = _subpart(root, path[0])
    for n in path[1:]:
        if part is None:
            return None
        if part.ctype == "multipart":
            part = _subpart(part, n)
        elif part.message is not None:
            part = _subpart(part.message, n)
        else:
            return None
    return part


def body_section(raw: bytes, att: FetchBody) -> bytes | None:
    """The bytes of BODY[section]<partial>; None (NIL) when the part does not exist."""
    root = parse_mime(raw)
    if not att.part:
        target = root
        data: bytes | None
        if att.text in ("", "MIME"):
            data = raw
        else:
            data = _text_section(target, att)
    else:
        found = _find_part(root, att.part)
        if found is None:
            return None
        if att.text == "":
            data = found.body
        elif att.text == "MIME":
            data = found.header
        else:
            inner = found.message  # HEADER/TEXT of a part address its enclosed message
            if inner is None:
                return None
            data = _text_section(inner, att)
    if data is None:
        return None
    if att.partial is not None:
        origin, count = att.partial
        data = data[origin : origin + count]
    return data


def _text_section(part: MimePart, att: FetchBody) -> bytes | None:
    if att.text == "HEADER":
        return part.header
    if att.text == "TEXT":
        return part.body
    if att.text.startswith("HEADER.FIELDS"):
        wanted = {f.lower() for f in att.fields}
        negate = att.text == "HEADER.FIELDS.NOT"
        kept = [raw for name, raw in header_fields(part.header) if (name in wanted) != negate]
        return b"".join(kept) + b"\r\n"
    return None
