"""parse_meta (APPEND's Date: day and THREADID) reads headers as the email package does.

The email package's header parser was APPEND's largest cost; parse_meta now splits the header
block itself. These tests hold it to the email package's reading (compat32, as before) on CPM
messages and on generated header blocks: folded, repeated, any case, LF or CRLF line ends.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given
from hypothesis import strategies as st

from cpmsync.cpmdata import OWNER, chat_message, random_tel, random_uuid
from cpmsync.msgstore.message_meta import MessageMeta, _sent_day, parse_meta, split_message


def _email_package_meta(data: bytes) -> MessageMeta:
    """The reading parse_meta replaced: BytesHeaderParser(compat32), first value of each header."""
    msg = BytesHeaderParser(policy=compat32).parsebytes(split_message(data)[0])
    key = None
    for header in ("Conversation-ID", "References", "In-Reply-To", "Message-ID"):
        v = msg.get(header)
        if v:
            first = str(v).split()[0] if header == "References" else str(v).strip()
            if first:
                key = first
                break
    threadid = "T" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24] if key else None
    return MessageMeta(sent_day=_sent_day(msg.get("Date")), threadid=threadid)


def test_cpm_chat_messages_get_the_thread_and_day_the_email_package_gives() -> None:
    rng = random.Random(7)
    when = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    for _ in range(200):
        msg = chat_message(rng, random_tel(rng), OWNER, when, random_uuid(rng))
        assert parse_meta(msg) == _email_package_meta(msg)
        assert parse_meta(msg).threadid is not None and parse_meta(msg).sent_day is not None


_NAMES = st.sampled_from(
    [
        "Conversation-ID",
        "conversation-id",
        "References",
        "REFERENCES",
        "In-Reply-To",
        "Message-ID",
        "Message-Id",
        "Date",
        "date",
        "Subject",
        "From",
        "X-Other",
    ]
)
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789<>@.-+", min_size=1, max_size=12)
_DATES = st.sampled_from(
    [
        "Fri, 27 Nov 2026 10:00:00 +0000",
        "27 Nov 2026 23:30:00 -0500",
        "Mon, 1 Jan 2024 00:00:00 +1400",
        "not a date",
        "Tue, 31 Feb 2026 10:00:00 +0000",
        "",
    ]
)


@st.composite
def _header_blocks(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_NAMES)
        if name.lower() == "date":
            value = draw(_DATES)
        else:
            value = " ".join(draw(st.lists(_WORD, min_size=0, max_size=4)))
        text = f"{name}: {value}".encode()
        if draw(st.booleans()) and value:  # fold after the first word
            head, _, tail = text.rpartition(b" ")
            text = head + eol + b"\t" + tail
        lines.append(text + eol)
    return b"".join(lines) + eol + b"body line" + eol


@given(_header_blocks())
def test_generated_header_blocks_read_as_the_email_package_reads_them(data: bytes) -> None:
    assert parse_meta(data) == _email_package_meta(data)
