"""Keeping the daemon's RSS near what it uses (glibc's allocator).

A long-lived process's RSS is the high-water mark of its heap, not what it holds: glibc keeps
freed memory for reuse, in one arena per thread that allocated (up to eight per core). The
agent allocates in bursts in worker threads (a collector reading files and child output,
start-up parsing the config), so each burst would otherwise stay resident for good.

- `limit_arenas()`, before the first thread starts: two arenas, not one per thread.
- `release()` after a burst: malloc_trim(0) hands every arena's free pages back.

Without glibc (musl, macOS) both do nothing. Measured with bench/footprint.py (docs/operations.md).
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the symbols already linked into this process
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas() -> bool:
    """At most ARENAS malloc arenas; True if glibc took the setting."""
    libc = _libc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, ARENAS))


def release() -> bool:
    """Give free heap pages back to the system; True if glibc released any."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))
