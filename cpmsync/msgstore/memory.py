"""Process-wide malloc tuning for the server: large blocks go back to the OS when freed.

glibc serves a block above its mmap threshold with mmap (returned on free), but it raises that
threshold to the size of any such block once freed (up to 32 MiB), and from then on serves those
sizes from the calling thread's arena, which keeps them. So argon2's 19 MiB per LOGIN, or an 8 MiB
FETCH batch, stays resident once per worker thread: 6 threads x 19 MiB after the first burst of
logins (RSS 58 -> 200 MB under imaptest stress). A fixed threshold ends the ratchet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["LARGE_BLOCK_BYTES", "return_large_blocks_to_os"]

log = logging.getLogger("cpmsync.msgstore.memory")

LARGE_BLOCK_BYTES = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def return_large_blocks_to_os(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Blocks of `threshold` bytes and more are mmapped and unmapped on free, in every thread.
    Call before the worker threads start; False (and nothing done) where libc is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
