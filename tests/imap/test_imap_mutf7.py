"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpmsync.imap import ImapProtocolError, decode_mailbox, encode_mailbox


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("tel:+15143457900", "tel:+15143457900"),
        ("f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae", "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("&", "&-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        # RFC 3501 §5.1.3 example
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("a\r\nb", "a&AA0ACg-b"),
    ],
)
def test_rfc3501_5_1_3_known_pairs(text: str, wire: str) -> None:
    assert encode_mailbox(text) == wire
    assert decode_mailbox(wire) == text
    assert decode_mailbox(wire.encode("ascii")) == text


@pytest.mark.parametrize(
    "bad",
    ["&", "&U,BTFw", "&U,BTF!-", "&A-", "caf\xe9", b"caf\xc3\xa9", "&2D0-", "a\x01b"],
)
def test_invalid_modified_utf7_is_a_codec_error(bad: str | bytes) -> None:
    with pytest.raises(ImapProtocolError) as ei:
        decode_mailbox(bad)
    assert ei.value.position is not None


@given(st.text())
def test_roundtrip_any_unicode_name(name: str) -> None:
    wire = encode_mailbox(name)
    assert wire.isascii()
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert decode_mailbox(wire) == name


@given(st.binary(max_size=40))
def test_decoding_random_bytes_raises_only_codec_error(data: bytes) -> None:
    try:
        decode_mailbox(data)
    except ImapProtocolError:
        pass
