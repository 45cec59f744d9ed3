"""P1-13: the text preview is what a user would read, not raw body bytes.

Unit examples per body shape (base64, QP, multipart/alternative, multipart/mixed with an image,
message/cpim, 7bit, latin-1), hypothesis for totality under any truncation, and end to end: another
client APPENDs such messages to msgstore (and Dovecot), the daemon syncs, the cache and the
message_added events carry the decoded preview.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import quopri
from pathlib import Path
from typing import Any

from daemon_offline_helpers import offline_settings, outbox_events, sync_once
from hypothesis import given
from hypothesis import strategies as st
from imapclient import IMAPClient

from cpmsync.daemon.cache import Cache
from cpmsync.daemon.preview import _decode_charset, needs_more, text_preview
from tests.msgstore.server_testlib import ThreadServer, make_settings
from tests.support.peers import ImapPeer

GREETING = "Grüße aus Montréal — see you"


def _ct(value: str, cte: str | None = None) -> bytes:
    h = f"Content-Type: {value}\r\n"
    if cte:
        h += f"Content-Transfer-Encoding: {cte}\r\n"
    return (h + "\r\n").encode()


B64_HEAD = _ct("text/plain; charset=utf-8", "base64")
B64_BODY = base64.encodebytes(GREETING.encode())  # 76-column lines, like mail clients write
QP_HEAD = _ct("text/plain; charset=utf-8", "quoted-printable")
QP_BODY = quopri.encodestring("Hallö Welt, schöne Grüße".encode())
ALT_HEAD = _ct('multipart/alternative; boundary="alt-1"')
ALT_BODY = (
    b"This is a multi-part message in MIME format.\r\n\r\n--alt-1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Caf=C3=A9 at  noon?\r\n--alt-1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Caf\xc3\xa9 at noon?</p>\r\n--alt-1--\r\n"
)
MIXED_HEAD = _ct("multipart/mixed; boundary=BB")
MIXED_BODY = (
    b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Hall=C3=B6 Welt\r\n--BB\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\r\n"
    b"--BB--\r\n"
)
IMAGE_FIRST_BODY = (
    b"--BB\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--BB\r\nContent-Type: text/plain\r\n\r\nsee the picture\r\n--BB--\r\n"
)
CPIM_HEAD = _ct("message/cpim")
CPIM_BODY = (
    b"From: <tel:+15145550100>\r\nTo: <tel:+15145550199>\r\nDateTime: 2026-11-27T10:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 34jk324j\r\n\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBonjour \xc3\xa0 tous\r\n"
)
# an image part first: the text starts ~600 bytes in, past the 256-byte prefix
LATE_BODY = (
    b"--BB\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg==\r\n" * 7
    + b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nlook at this \xe2\x98\x85\r\n--BB--\r\n"
)
LATIN1_HEAD = _ct("text/plain; charset=iso-8859-1", "8bit")
LATIN1_BODY = "Ça coûte 5 £, très cher.".encode("latin-1")


def test_base64_text_is_decoded() -> None:
    assert text_preview(B64_HEAD, B64_BODY, 256) == GREETING


def test_quoted_printable_is_decoded() -> None:
    assert text_preview(QP_HEAD, QP_BODY, 256) == "Hallö Welt, schöne Grüße"


def test_multipart_alternative_takes_the_plain_part() -> None:
    assert text_preview(ALT_HEAD, ALT_BODY, 256) == "Café at noon?"


def test_multipart_mixed_with_image_takes_the_text() -> None:
    assert text_preview(MIXED_HEAD, MIXED_BODY, 256) == "Hallö Welt"
    assert text_preview(MIXED_HEAD, IMAGE_FIRST_BODY, 256) == "see the picture"


def test_cpim_chat_body_gives_the_inner_text() -> None:
    assert text_preview(CPIM_HEAD, CPIM_BODY, 256) == "Bonjour à tous"


def test_plain_7bit_without_mime_headers() -> None:
    assert (
        text_preview(None, b"hello\r\n  there\r\n\r\nsecond paragraph", 256) == "hello there second paragraph"
    )
    assert text_preview(b"\r\n", b"hi", 256) == "hi"


def test_latin1_charset() -> None:
    assert text_preview(LATIN1_HEAD, LATIN1_BODY, 256) == "Ça coûte 5 £, très cher."


def test_cut_on_a_character_boundary() -> None:
    got = text_preview(B64_HEAD, B64_BODY, 4)
    assert got == "Grü"  # "Grü" is 4 UTF-8 bytes; "Grüß" would be 6
    assert text_preview(QP_HEAD, QP_BODY, 0) is None


def test_prefix_that_misses_the_text_part_gives_no_preview() -> None:
    # the image comes first and the prefix ends inside it: nothing is guessed
    assert text_preview(MIXED_HEAD, IMAGE_FIRST_BODY[:40], 256) is None
    # a multipart whose part headers are cut
    assert text_preview(MIXED_HEAD, MIXED_BODY[:30], 256) is None
    assert text_preview(_ct("image/png", "base64"), b"iVBORw0KGgo=", 256) is None


def test_needs_more_only_for_cut_multipart_or_cpim() -> None:
    cut = LATE_BODY[:256]
    assert text_preview(MIXED_HEAD, cut, 256) is None
    assert needs_more(MIXED_HEAD, cut, 256, None)
    assert text_preview(MIXED_HEAD, LATE_BODY, 256) == "look at this ★"
    assert not needs_more(MIXED_HEAD, LATE_BODY[:100], 256, None)  # shorter than asked: it is all there
    assert not needs_more(_ct("image/png", "base64"), b"x" * 256, 256, None)  # no text part to reach
    assert not needs_more(QP_HEAD, QP_BODY, 10, "Hallö")
    assert needs_more(CPIM_HEAD, CPIM_BODY[:60], 60, None)


def test_truncated_escapes_are_left_out() -> None:
    # a cut "=C3=B" escape, a cut base64 quantum and a cut UTF-8 sequence show no garbage
    assert text_preview(QP_HEAD, b"Hall=C3=B", 256) == "Hall"
    assert text_preview(B64_HEAD, B64_BODY[:6], 256) == "Gr"
    assert text_preview(None, "Grü".encode()[:3], 256) == "Gr"
    assert text_preview(MIXED_HEAD, MIXED_BODY[: MIXED_BODY.index(b"--BB", 5) + 3], 256) == "Hallö Welt"


SAMPLES = [
    (B64_HEAD, B64_BODY),
    (QP_HEAD, QP_BODY),
    (ALT_HEAD, ALT_BODY),
    (MIXED_HEAD, MIXED_BODY),
    (MIXED_HEAD, IMAGE_FIRST_BODY),
    (CPIM_HEAD, CPIM_BODY),
    (LATIN1_HEAD, LATIN1_BODY),
]


@given(st.sampled_from(SAMPLES), st.integers(0, 400), st.integers(0, 300))
def test_any_truncation_gives_a_prefix_of_the_full_preview(sample: Any, cut: int, limit: int) -> None:
    head, body = sample
    full = text_preview(head, body, 10_000) or ""
    got = text_preview(head, body[:cut], limit)
    assert got is None or (len(got.encode()) <= limit and got.strip() == got)
    # a cut body never shows anything the whole one would not (modulo a word cut mid-way)
    if got:
        assert full.startswith(got) or full.startswith(got.rsplit(" ", 1)[0])


@given(st.binary(max_size=300), st.binary(max_size=600), st.integers(0, 300))
def test_never_raises_on_arbitrary_bytes(head: bytes, body: bytes, limit: int) -> None:
    got = text_preview(head, body, limit)
    assert got is None or (isinstance(got, str) and len(got.encode()) <= limit)


@given(
    st.sampled_from(
        ["multipart/mixed; boundary=B", "message/cpim", "text/plain; charset=utf-16", "text/html"]
    ),
    st.sampled_from(["base64", "quoted-printable", "7bit", "x-unknown"]),
    st.binary(max_size=400),
)
def test_never_raises_on_arbitrary_bodies_under_real_headers(ctype: str, cte: str, body: bytes) -> None:
    got = text_preview(_ct(ctype, cte), body, 256)
    assert got is None or len(got.encode()) <= 256


def _incremental(data: bytes, charset: str) -> str:
    """How every charset is decoded: a character cut at the end is left out, bad bytes replaced."""
    return codecs.getincrementaldecoder(charset)(errors="replace").decode(data, final=False)


@given(
    st.sampled_from(["utf-8", "UTF-8", "utf8", "us-ascii", "US-ASCII", "ascii"]),
    st.one_of(st.binary(max_size=60), st.text(max_size=30).map(str.encode)),
    st.integers(0, 60),
)
def test_common_charsets_decode_as_the_incremental_decoder_does(charset: str, data: bytes, cut: int) -> None:
    """The strict first try for UTF-8 and US-ASCII gives the general decoder's text for any bytes,
    whole or cut mid-character, valid or not (non-ASCII bytes under us-ascii included)."""
    prefix = data[:cut]
    assert _decode_charset(prefix, charset) == _incremental(prefix, charset)


@given(st.text(max_size=80), st.integers(1, 100))
def test_the_preview_is_cut_at_the_same_place_for_ascii_and_other_text(text: str, limit: int) -> None:
    """ASCII text is cut by characters, other text by UTF-8 bytes: the same preview either way."""
    got = text_preview(None, text.encode(), limit)
    whole = " ".join(text.split())
    expected = whole.encode()[:limit].decode("utf-8", errors="ignore").rstrip() or None
    assert got == expected


# --- end to end ----------------------------------------------------------------------------
def _message(subject: str, head: bytes, body: bytes) -> bytes:
    return (
        (
            f"From: bob@example.org\r\nTo: carol@example.org\r\nSubject: {subject}\r\n"
            f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
        ).encode()
        + head
        + body
    )


E2E = {
    "b64": (B64_HEAD, B64_BODY, GREETING),
    "qp": (QP_HEAD, QP_BODY, "Hallö Welt, schöne Grüße"),
    "alt": (ALT_HEAD, ALT_BODY, "Café at noon?"),
    "mixed": (MIXED_HEAD, MIXED_BODY, "Hallö Welt"),
    "cpim": (CPIM_HEAD, CPIM_BODY, "Bonjour à tous"),
    "latin1": (LATIN1_HEAD, LATIN1_BODY, "Ça coûte 5 £, très cher."),
    "late": (MIXED_HEAD, LATE_BODY, "look at this ★"),  # needs the second, longer FETCH
}


def _append(port: int, user: str, password: str) -> None:
    c = IMAPClient("127.0.0.1", port, ssl=False, use_uid=True)
    c.login(user, password)
    try:
        c.create_folder("Previews")
        for subject, (head, body, _) in E2E.items():
            c.append("Previews", _message(subject, head, body))
    finally:
        c.logout()


async def _check(
    tmp_path: Path, host: str, port: int, user: str, password: str, **imap: Any
) -> dict[str, str | None]:
    assert host == "127.0.0.1"
    await asyncio.to_thread(_append, port, user, password)
    settings = offline_settings(port, user, password, tmp_path, **imap)
    await sync_once(settings)
    expected: dict[str, str | None] = {s: want for s, (_, _, want) in E2E.items()}
    if imap.get("preview_retry_bytes") == 0:
        expected["late"] = None  # no second FETCH: no preview rather than a guess
    cache = Cache.open(settings.cache.path, user, upgrade=False)
    try:
        got = {m.subject: m.preview for m in cache.messages("Previews")}
    finally:
        cache.close()
    assert got == expected
    events = {e["subject"]: e["preview"] for e in outbox_events(settings) if e["kind"] == "message_added"}
    assert events == expected
    return got


async def test_previews_are_decoded_text(tmp_path: Path, imap_peer: ImapPeer) -> None:
    p = imap_peer
    await _check(tmp_path, p.host, p.port, p.user, p.password)


async def test_msgstore_no_retry_leaves_late_text_without_preview(tmp_path: Path) -> None:
    with ThreadServer(make_settings()) as srv:
        got = await _check(tmp_path, "127.0.0.1", srv.port, "alice", "alice-pw", preview_retry_bytes=0)
    assert got["late"] is None and got["mixed"] == "Hallö Welt"


def _model_bytes(body: bytes, retry_bytes: int) -> tuple[int, int]:
    from cpmsync.simulator.account import Folder
    from cpmsync.simulator.catchup import ImapSession
    from cpmsync.simulator.wire import WireConfig

    s = ImapSession(WireConfig(tls="none"), server_style="msgstore")
    folder = Folder("Previews", uidvalidity=1, uidnext=3, messages=2, unseen=1, highestmodseq=9)
    s.sync_folder(folder, 5, [(2, _message("m", MIXED_HEAD, body))], preview_retry_bytes=retry_bytes)
    w = s.finish()
    return w.imap_up, w.imap_down


def test_simulator_model_counts_the_second_preview_fetch() -> None:
    # the byte model (issue 5 cross-check) sends the daemon's second FETCH only when it would
    up, down = _model_bytes(LATE_BODY, 1024)
    up0, down0 = _model_bytes(LATE_BODY, 0)
    assert up > up0 and down - down0 > len(LATE_BODY)
    assert _model_bytes(MIXED_BODY, 1024) == _model_bytes(MIXED_BODY, 0)
