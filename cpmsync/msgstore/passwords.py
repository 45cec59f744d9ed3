"""Password hashing for store users: argon2id with modest memory, and a cache of verified logins.

OWASP's minimum argon2id profile (19 MiB, t=2): 50 concurrent LOGINs must not need gigabytes, so
at most `_CONCURRENT_HASHES` run at once. A client that logs in again and again with the same
password (a phone reconnecting on every wake, imaptest's stress mode) pays argon2 once per
`CACHE_TTL_S`: a success is remembered as an HMAC of the password under a key that lives only in
this process, next to the stored hash it matched (Dovecot's auth_cache, which keeps the password
hash or the password itself, does the same). A changed password has a new stored hash (new salt),
so it never meets an old entry; failures are never cached, every wrong password costs argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["CACHE_TTL_S", "hash_password", "verify_password"]

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the user does not exist, so the answer takes as long either way.
_DUMMY_HASH = _HASHER.hash("cpmsync-no-such-user")
# argon2 runs at most this many at once: each holds 19 MiB, and more than the cores gain nothing
_CONCURRENT_HASHES = max(1, min(4, os.cpu_count() or 1))
_hash_slots = threading.BoundedSemaphore(_CONCURRENT_HASHES)

CACHE_TTL_S = 3600.0
"""How long a verified password is accepted without argon2 (Dovecot's auth_cache_ttl default)."""
_CACHE_MAX = 10_000


class _VerifiedCache:
    """stored hash -> (HMAC of the password that matched it, expiry); LRU-bounded, thread-safe."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, password: str) -> bytes:
        return hmac.digest(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256)

    def hit(self, stored_hash: str, password: str) -> bool:
        with self._lock:
            entry = self._entries.get(stored_hash)
            if entry is None:
                return False
            if entry[1] < time.monotonic():
                del self._entries[stored_hash]
                return False
            self._entries.move_to_end(stored_hash)
        return hmac.compare_digest(entry[0], self._mac(password))

    def remember(self, stored_hash: str, password: str) -> None:
        mac = self._mac(password)
        with self._lock:
            self._entries[stored_hash] = (mac, time.monotonic() + self._ttl)
            self._entries.move_to_end(stored_hash)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


_verified = _VerifiedCache(CACHE_TTL_S, _CACHE_MAX)


def hash_password(password: str) -> str:
    with _hash_slots:
        return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if stored_hash is not None and _verified.hit(stored_hash, password):
        return True
    try:
        with _hash_slots:
            ok = _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if ok and stored_hash is not None:
        _verified.remember(stored_hash, password)
    return ok
