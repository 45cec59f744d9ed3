"""COMPRESS=DEFLATE (RFC 4978) as a pluggable transform of the connection's bytes (wsproto style).

Raw deflate (no zlib header) both ways; every batch of responses ends with a sync flush so the
client can decode it at once (RFC 4978 4: "the server MUST flush ... after each response").
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_INFLATE_STEP_BYTES", "DeflateCodec", "IdentityCodec", "StreamCodec"]


# Inflate at most this much per step, so a small "deflate bomb" cannot balloon memory before the
# command parser's line and literal limits get a chance to refuse it.
MAX_INFLATE_STEP_BYTES = 1 << 20


class IdentityCodec:
    """Bytes pass unchanged (before COMPRESS)."""

    active = False
    pending = False

    def decode(self, data: bytes) -> bytes:
        return data

    def decode_more(self) -> bytes:
        return b""

    def encode(self, data: bytes) -> bytes:
        return data


class DeflateCodec:
    """RFC 1951 raw deflate in both directions."""

    active = True

    def __init__(self, level: int = 6) -> None:
        self._inflate = zlib.decompressobj(-15)
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)

    @property
    def pending(self) -> bool:
        """Input left that `decode_more` still has to inflate (bounded steps)."""
        return bool(self._inflate.unconsumed_tail)

    def decode(self, data: bytes) -> bytes:
        """Raises zlib.error on a corrupt stream (the session then drops the connection)."""
        return self._inflate.decompress(data, MAX_INFLATE_STEP_BYTES)

    def decode_more(self) -> bytes:
        return self._inflate.decompress(self._inflate.unconsumed_tail, MAX_INFLATE_STEP_BYTES)

    def encode(self, data: bytes) -> bytes:
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


StreamCodec = IdentityCodec | DeflateCodec
