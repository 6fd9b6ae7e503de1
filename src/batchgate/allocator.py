"""Holding glibc's malloc to a few arenas, so memory one thread frees is reused by the others.

glibc gives every thread that allocates an arena of its own, up to eight per core, and keeps
what is freed in an arena for that arena. Left so, the server's threads (SQLite's writer and
reader, the pool that reads and writes files) each take one as they join in, and the resident
memory grows with how long a batch runs rather than with what the process holds (invariant I4):
about 20 MB more for a 1,000,000-line batch than for a 10,000-line one. Two arenas cost no
measurable throughput (most work runs on the event loop's thread).
"""

from __future__ import annotations

import ctypes
import platform

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def limit_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas at `count` for threads that allocate from now on; True if applied.

    0 leaves glibc's own choice (and its MALLOC_ARENA_MAX variable); other C libraries are left alone.
    """
    if count <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, count) == 1
