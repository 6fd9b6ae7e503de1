"""batchgate.allocator: the server's threads share a few glibc malloc arenas instead of one each."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from batchgate.allocator import limit_arenas
from batchgate.settings import Settings

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

# Eight threads each allocate and keep a block, then glibc's malloc_stats() lists the arenas on stderr.
THREADS_ALLOCATING = """
import ctypes, sys, threading
from batchgate.allocator import limit_arenas
limit_arenas(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
blocks, ready = [], threading.Barrier(8)
def allocate():
    ready.wait()  # all alive at once, so no thread's arena is free for another to take over
    blocks.append(libc.malloc(1000))
    ready.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc.malloc_stats()
"""


def arenas_used(limit: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS_ALLOCATING, str(limit)], capture_output=True, text=True, timeout=30, check=True
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@glibc
def test_threads_share_the_arenas_the_limit_allows():
    assert arenas_used(0) > 2, "without a limit, glibc gives allocating threads arenas of their own"
    assert arenas_used(2) == 2


def test_zero_leaves_the_allocator_alone():
    assert limit_arenas(0) is False


def test_the_limit_is_a_setting_with_its_environment_variable():
    assert Settings().malloc_arenas == 2
    assert Settings.load(env={"BATCHGATE_MALLOC_ARENAS": "0"}).malloc_arenas == 0
