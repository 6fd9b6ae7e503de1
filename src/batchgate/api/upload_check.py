"""Checking a batch input file in a process of its own while it is uploaded (domain/file_check.py).

Checking lines is pure Python: on a thread it would hold the GIL that the upload's own work (network,
hashing, writing) needs, and the two would run one after the other. In a child process it runs beside
the upload, on another core. A thread here only forwards the chunks to the child's stdin (writes to
a pipe release the GIL); at most a few chunks wait for it, so memory stays flat. The child is a
small program of its own (api/upload_checker.py) that lives as long as the upload. The check can
only cost the summary: whatever goes wrong in it, even the child dying, the upload goes on and the
batch validates the file itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import orjson

import batchgate
from batchgate.api.upload_checker import arguments, summary_from_wire
from batchgate.domain.file_check import FileSummary, LineLimits
from batchgate.scratch_ids import scratch_folder
from batchgate.settings import Settings

log = logging.getLogger("batchgate.api")
QUEUED_CHUNKS = 4
PIPE_BYTES = 1 << 20  # the checker's stdin: the most an unprivileged process may ask for by default


class SpareChecker:
    """One checker process started ahead of need, so an upload's check starts at once.

    Starting Python and importing the checker takes tens of milliseconds; the spare has done it while
    nothing was uploading. Each checker still checks a single file and exits, so no state lasts from
    one upload to the next; when a check ends, a new spare is started. Uploads that overlap start
    their own. A spare waits on its stdin; when the server exits, its stdin closes and it ends too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []

    def take(self, command: list[str]) -> subprocess.Popen[bytes]:
        with self._lock:
            spare, spare_command, self._spare = self._spare, self._command, None
        if spare is not None and spare_command == command and spare.poll() is None:
            return spare
        if spare is not None:
            _close(spare)
        return _start(command)

    def replenish(self, command: list[str]) -> None:
        """Have a spare for `command` waiting (one for another command, or one that died, is replaced)."""
        with self._lock:
            stale = self._spare
            if stale is not None and self._command == command and stale.poll() is None:
                return
            self._spare, self._command = _start(command), command
        if stale is not None:
            _close(stale)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            _close(spare)


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    # This very copy of batchgate first on the child's import path, whatever the server was started with.
    source = str(Path(batchgate.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    # A pipe holds 64 KiB by default: the forwarder and the checker would take turns 16 times per MiB.
    with contextlib.suppress(OSError, AttributeError):  # a pipe limit set lower, or not Linux: the default
        fcntl.fcntl(_pipes(child)[0].fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return child


def _pipes(child: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The checker's stdin and stdout: _start always opens both."""
    assert child.stdin is not None and child.stdout is not None
    return child.stdin, child.stdout


def _close(child: subprocess.Popen[bytes]) -> None:
    """End a checker that was given no file: it sees an empty one, and nobody reads its answer."""
    stdin, stdout = _pipes(child)
    stdout.close()
    with contextlib.suppress(OSError):
        stdin.close()
    child.wait()


SPARE = SpareChecker()
atexit.register(SPARE.close)


class UploadCheck:
    """feed() each chunk of the file in order, then summary(); close() if the upload is abandoned."""

    def __init__(self, settings: Settings):
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(QUEUED_CHUNKS)
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._outcome: asyncio.Future[FileSummary | None] = self._loop.create_future()
        self._limits = LineLimits.of(settings)
        self._scratch = scratch_folder(settings)
        self._ended = False  # the forwarder has taken the end of the chunks
        self.child: subprocess.Popen[bytes] | None = None
        # Its own thread, not the default pool's: it lives as long as the upload, which needs that pool to write.
        threading.Thread(target=self._forward, name="upload-check", daemon=True).start()

    async def feed(self, chunk: bytes) -> None:
        await self._room.acquire()
        self._chunks.put(chunk)

    async def summary(self) -> FileSummary | None:
        """The clean file's summary, once every chunk fed is checked; None otherwise."""
        self.close()
        return await self._outcome

    def close(self) -> None:
        """No more chunks: the check finishes (and is not waited for)."""
        self._chunks.put(None)

    def _forward(self) -> None:
        summary, command = None, arguments(self._limits, self._scratch)
        try:
            self.child = SPARE.take(command)
            stdin, stdout = _pipes(self.child)
            try:
                while (chunk := self._take()) is not None:
                    stdin.write(chunk)
            finally:
                stdin.close()
            answer = orjson.loads(stdout.read())
            if "failure" in answer:
                log.error(
                    "checking an upload's lines failed; its batches will validate it themselves: %s", answer["failure"]
                )
            summary = summary_from_wire(answer.get("summary"), self._limits)
        except Exception:
            log.exception("checking an upload's lines failed; its batches will validate it themselves")
            while not self._ended:  # keep taking chunks, so the upload is never held up
                self._take()
        finally:
            if self.child is not None:
                _pipes(self.child)[1].close()
                self.child.wait()
            self._call(lambda: self._settle(summary))
            SPARE.replenish(command)

    def _take(self) -> bytes | None:
        chunk = self._chunks.get()
        if chunk is None:
            self._ended = True
        else:
            self._call(self._room.release)
        return chunk

    def _settle(self, summary: FileSummary | None) -> None:
        if not self._outcome.done():
            self._outcome.set_result(summary)

    def _call(self, fn: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone (shutdown): nobody waits for this any more
            self._loop.call_soon_threadsafe(fn)
