"""Checking a batch input file in a process of its own while it is uploaded (domain/file_check.py).

Checking lines is pure Python: on a thread it held the GIL that the upload's own work (network,
hashing, writing) needs, so the two ran one after the other. In a child process it runs beside
the upload, on another core. A thread here only forwards the chunks through a pipe (writes to a
pipe release the GIL); at most a few chunks wait for it, so memory stays flat. Children are
forked from a small server process that has the checking modules loaded, so one starts in
milliseconds. The check can only cost the summary: whatever goes wrong in it, even the child
dying, the upload goes on and the batch validates the file itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import queue
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

from batchgate.blobs.lines import LineSplitter
from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits
from batchgate.settings import Settings
from batchgate.worker.ledger import UniqueIds, scratch_folder

log = logging.getLogger("batchgate.api")
QUEUED_CHUNKS = 4
IDS_AT_ONCE = 10_000  # custom_ids inserted into the on-disk set at once
END = b""  # the last message on the pipe: no more chunks

_children = multiprocessing.get_context("forkserver")
_children.set_forkserver_preload([__name__])


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
        self.child: multiprocessing.process.BaseProcess | None = None
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
        summary = None
        ours, theirs = _children.Pipe()
        try:
            self.child = _children.Process(target=_check_in_child, args=(theirs, self._limits, self._scratch),
                                           name="batchgate-upload-check", daemon=True)
            self.child.start()
            theirs.close()
            while (chunk := self._take()) is not None:
                ours.send_bytes(chunk)
            ours.send_bytes(END)
            failure, summary = ours.recv()
            if failure:
                log.error("checking an upload's lines failed; its batches will validate it themselves: %s", failure)
        except Exception:
            log.exception("checking an upload's lines failed; its batches will validate it themselves")
            while not self._ended:  # keep taking chunks, so the upload is never held up
                self._take()
        finally:
            ours.close()
            if self.child is not None:
                self.child.join(5)
            self._call(lambda: self._outcome.done() or self._outcome.set_result(summary))

    def _take(self) -> bytes | None:
        chunk = self._chunks.get()
        if chunk is None:
            self._ended = True
        else:
            self._call(self._room.release)
        return chunk

    def _call(self, fn) -> None:
        try:
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass  # the event loop is gone (shutdown): nobody waits for this any more


def _check_in_child(conn: Connection, limits: LineLimits, scratch: Path) -> None:
    """The child: check the chunks that come down the pipe; answer (failure, summary) once they end."""
    # Parsed lines make no reference cycles. Without the collector's passes over the objects inherited
    # from the fork server, their pages stay shared instead of being copied into the child.
    gc.disable()
    ended = False

    def take() -> bytes | None:
        nonlocal ended
        try:
            chunk = conn.recv_bytes()
        except EOFError:  # the parent is gone
            chunk = END
        ended = chunk == END
        return chunk or None

    try:
        answer = (None, check_chunks(take, limits, scratch))
    except Exception as exc:
        answer = (f"{exc.__class__.__name__}: {exc}", None)
        while not ended:  # the parent sends on to the end; take it all, so it is not held up
            take()
    except KeyboardInterrupt:
        return
    try:
        conn.send(answer)
    except OSError:
        pass  # the parent is gone


def check_chunks(take: Callable[[], bytes | None], limits: LineLimits, scratch: Path) -> FileSummary | None:
    """Check the chunks `take` gives until None; the summary if the file is clean, else None."""
    check, splitter = FileCheck(limits), LineSplitter(limits.max_line_bytes)
    seen = UniqueIds(scratch)
    try:
        pending: list[str] = []
        while (chunk := take()) is not None:
            if check.clean:  # a spoiled file's remaining chunks are only taken
                pending += check.feed(splitter.feed(chunk))
                if len(pending) >= IDS_AT_ONCE:
                    pending = [] if seen.add(pending) else check.spoil()
        if check.clean and seen.add(pending + check.feed(splitter.end())):
            return check.summary()
        return None
    finally:
        seen.close()
