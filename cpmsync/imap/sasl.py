"""The raw lines around IDLE and AUTHENTICATE (RFC 2177, RFC 3501 §6.2.2).

These lines are not commands: the server reads them with CommandParser.expect_raw_line(),
the client writes them with these helpers, so both sides agree on the base64 and the CRLF.
"""

from __future__ import annotations

import binascii

from .errors import ImapProtocolError

__all__ = ["IDLE_DONE", "SASL_CANCEL", "decode_sasl_response", "encode_sasl_response", "is_idle_done"]

IDLE_DONE = b"DONE\r\n"
"""What a client sends to end IDLE."""
SASL_CANCEL = b"*\r\n"
"""What a client sends to abort an AUTHENTICATE exchange (the server answers BAD)."""


def encode_sasl_response(data: bytes) -> bytes:
    """One client SASL response line: base64 of data plus CRLF (an empty response is an empty line)."""
    return binascii.b2a_base64(data, newline=False) + b"\r\n"


def decode_sasl_response(line: bytes) -> bytes | None:
    """Decode a RawLine's data from AUTHENTICATE; None means the client cancelled ("*")."""
    line = line.rstrip(b"\r\n")
    if line == b"*":
        return None
    try:
        return binascii.a2b_base64(line, strict_mode=True) if line else b""
    except (binascii.Error, ValueError):
        raise ImapProtocolError("SASL response is not valid base64", position=0, line=line) from None


def is_idle_done(line: bytes) -> bool:
    """True for the line that ends IDLE ("DONE", any case, as RFC 2177's grammar allows)."""
    return line.rstrip(b"\r\n").upper() == b"DONE"
