"""Bytes below IMAP: COMPRESS=DEFLATE, TLS records, TCP segments, pure ACKs, IP headers.

`WireCounter` is fed the IMAP byte stream flight by flight (one flight = everything one side
writes before waiting for the other) and counts what crosses the air interface:
- COMPRESS=DEFLATE (RFC 4978): the real stream is compressed with zlib raw deflate, one
  compressor per direction for the whole connection, sync-flushed at the end of each flight.
- TLS: each flight is written as records of at most 16 KiB plaintext; each record costs 22 B in
  TLS 1.3 (5 header + 1 inner content type + 16 AEAD tag) or 29 B in TLS 1.2 AES-GCM
  (5 header + 8 explicit nonce + 16 tag).
- TCP/IP: segments of at most MSS payload bytes, each with 52 B of headers over IPv4 with TCP
  timestamps (20 IP + 20 TCP + 12 option) or 72 B over IPv6 (40 + 20 + 12).
- ACKs (delayed-ACK rule, RFC 1122 §4.2.3.2 / RFC 5681 §4.2): the receiver acknowledges every
  second full segment at once; an odd last segment waits for the delayed-ACK timer and rides on
  the receiver's reply if the next flight is the receiver's, else costs one pure ACK.
"""

from __future__ import annotations

import functools
import ssl
import zlib
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["WireConfig", "WireCount", "WireCounter", "tls_handshake_flights"]

TlsVersion = Literal["1.3", "1.2", "none"]

MAX_TLS_RECORD_BYTES = 16384  # RFC 8446 §5.1 / RFC 5246 §6.2.1: 2^14 bytes of plaintext
TLS13_RECORD_OVERHEAD_BYTES = 22
TLS12_GCM_RECORD_OVERHEAD_BYTES = 29


@dataclass(frozen=True, slots=True)
class WireConfig:
    """How the connection is carried: IP version, TLS version, MTU."""

    ipv6: bool = False
    tls: TlsVersion = "1.3"
    mtu_bytes: int = 1500
    tcp_timestamps: bool = True
    max_record_bytes: int = MAX_TLS_RECORD_BYTES

    @property
    def header_bytes(self) -> int:
        ip = 40 if self.ipv6 else 20
        return ip + 20 + (12 if self.tcp_timestamps else 0)

    @property
    def mss_bytes(self) -> int:
        """Payload per segment: MTU minus all headers (1448 B for IPv4 + timestamps at MTU 1500)."""
        return self.mtu_bytes - self.header_bytes

    @property
    def record_overhead_bytes(self) -> int:
        return {"1.3": TLS13_RECORD_OVERHEAD_BYTES, "1.2": TLS12_GCM_RECORD_OVERHEAD_BYTES, "none": 0}[
            self.tls
        ]

    @property
    def syn_bytes(self) -> int:
        """SYN / SYN-ACK carry MSS, SACK-permitted, timestamps and window scale: 20 option bytes more."""
        return self.header_bytes + 8


@dataclass(slots=True)
class WireCount:
    """Byte totals per layer, per direction, plus the flight list the radio model replays."""

    imap_up: int = 0
    imap_down: int = 0
    stream_up: int = 0  # after COMPRESS=DEFLATE (equal to imap_* without it)
    stream_down: int = 0
    tls_up: int = 0  # TLS record bytes (payload + record overhead; handshake included)
    tls_down: int = 0
    wire_up: int = 0  # IP packets: TLS bytes + TCP/IP headers + pure ACKs + SYN/FIN
    wire_down: int = 0
    segments_up: int = 0
    segments_down: int = 0
    pure_acks_up: int = 0
    pure_acks_down: int = 0
    flights: list[tuple[str, int]] = field(default_factory=list)  # (direction, wire bytes) in order

    def add(self, direction: str, attr: str, n: int) -> None:
        key = f"{attr}_{direction}"
        setattr(self, key, getattr(self, key) + n)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "flights"}


def _other(direction: str) -> str:
    return "down" if direction == "up" else "up"


class WireCounter:
    """Stateful: one per TCP connection, because deflate and ACK state carry across flights."""

    def __init__(self, cfg: WireConfig | None = None) -> None:
        self.cfg = cfg or WireConfig()
        self.count = WireCount()
        self._deflaters: dict[str, zlib._Compress] | None = None
        self._pending_ack_from: str | None = None  # side that owes a delayed ACK

    def start_compression(self) -> None:
        """After `COMPRESS DEFLATE` is answered OK, both directions deflate (RFC 4978 §3)."""
        self._deflaters = {
            d: zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15) for d in ("up", "down")
        }

    def connect(self) -> None:
        """TCP three-way handshake, then the TLS handshake flights (measured from a real handshake)."""
        c = self.cfg
        self._packet("up", c.syn_bytes)
        self._packet("down", c.syn_bytes)
        self._packet("up", c.header_bytes)
        if c.tls != "none":
            for direction, nbytes in tls_handshake_flights(c.tls):
                self._segments(direction, nbytes)
                self.count.add(direction, "tls", nbytes)

    def close(self) -> None:
        """FIN from the client, FIN+ACK from the server, final ACK."""
        self._settle_acks(None)
        h = self.cfg.header_bytes
        self._packet("up", h)
        self._packet("down", h)
        self._packet("up", h)

    def send(self, direction: str, data: bytes) -> None:
        """One flight of IMAP bytes from one side."""
        self.count.add(direction, "imap", len(data))
        if self._deflaters is not None:
            d = self._deflaters[direction]
            data = d.compress(data) + d.flush(zlib.Z_SYNC_FLUSH)
        self.count.add(direction, "stream", len(data))
        n = len(data)
        if self.cfg.tls != "none":
            records = -(-n // self.cfg.max_record_bytes) if n else 0
            n += records * self.cfg.record_overhead_bytes
        self.count.add(direction, "tls", n)
        self._segments(direction, n)

    def finish(self) -> WireCount:
        self._settle_acks(None)
        return self.count

    def _packet(self, direction: str, nbytes: int) -> None:
        self.count.add(direction, "wire", nbytes)
        self.count.flights.append((direction, nbytes))

    def _settle_acks(self, next_sender: str | None) -> None:
        owing = self._pending_ack_from
        if owing is not None and owing != next_sender:
            self.count.add(owing, "pure_acks", 1)
            self._packet(owing, self.cfg.header_bytes)
        self._pending_ack_from = None

    def _segments(self, direction: str, payload: int) -> None:
        if payload <= 0:
            return
        self._settle_acks(direction)
        mss = self.cfg.mss_bytes
        segs = -(-payload // mss)
        self.count.add(direction, "segments", segs)
        self._packet(direction, payload + segs * self.cfg.header_bytes)
        receiver = _other(direction)
        immediate = segs // 2
        if immediate:
            self.count.add(receiver, "pure_acks", immediate)
            self._packet(receiver, immediate * self.cfg.header_bytes)
        if segs % 2:
            self._pending_ack_from = receiver


def _self_signed_context() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh RSA-2048 certificate (the common IMAP server key type)."""
    import datetime
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imap.example.net")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("imap.example.net")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as d:
        cp, kp = Path(d) / "c.pem", Path(d) / "k.pem"
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kp.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cp, kp)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server, client


@functools.cache
def tls_handshake_flights(version: TlsVersion) -> tuple[tuple[str, int], ...]:
    """Record bytes of each handshake flight, measured from a real in-memory handshake.

    The certificate is one self-signed RSA-2048 certificate; a production chain with an
    intermediate adds roughly 1-1.5 KB to the server's flight.
    """
    server_ctx, client_ctx = _self_signed_context()
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    for ctx in (server_ctx, client_ctx):
        ctx.minimum_version = v
        ctx.maximum_version = v
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname="imap.example.net")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    flights: list[tuple[str, int]] = []
    done = [False, False]
    for _ in range(10):
        for i, (obj, out, peer_in, direction) in enumerate(
            ((client, c_out, s_in, "up"), (server, s_out, c_in, "down"))
        ):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                flights.append((direction, len(data)))
                peer_in.write(data)
        if all(done):
            break
    # TLS 1.3 servers send NewSessionTicket after the handshake; the client reads them with its first read.
    try:
        client.read(1)
    except (ssl.SSLWantReadError, ssl.SSLError):
        pass
    return tuple(flights)
