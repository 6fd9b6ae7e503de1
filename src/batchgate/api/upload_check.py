"""Checking a batch input file on a thread of its own while it is uploaded (domain/file_check.py).

The upload's own work (network, hashing, writing) mostly runs outside the GIL, so the line check
overlaps it instead of following it, and the event loop stays free for other requests. A few
chunks at most wait for the thread, so memory stays flat. The check can only cost the summary:
whatever goes wrong in it, the upload goes on and the batch validates the file itself.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from batchgate.blobs.lines import LineSplitter
from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits
from batchgate.settings import Settings
from batchgate.worker.ledger import UniqueIds, scratch_folder

log = logging.getLogger("batchgate.api")
QUEUED_CHUNKS = 4
IDS_AT_ONCE = 10_000  # custom_ids inserted into the on-disk set at once


class UploadCheck:
    """feed() each chunk of the file in order, then summary(); close() if the upload is abandoned."""

    def __init__(self, settings: Settings):
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(QUEUED_CHUNKS)
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._outcome: asyncio.Future[FileSummary | None] = self._loop.create_future()
        self._limits = LineLimits.of(settings)
        self._scratch = scratch_folder(settings)
        self._ended = False  # the thread has taken the end of the chunks
        # Its own thread, not the default pool's: it lives as long as the upload, which needs that pool to write.
        threading.Thread(target=self._run, name="upload-check", daemon=True).start()

    async def feed(self, chunk: bytes) -> None:
        await self._room.acquire()
        self._chunks.put(chunk)

    async def summary(self) -> FileSummary | None:
        """The clean file's summary, once the thread has checked every chunk fed; None otherwise."""
        self.close()
        return await self._outcome

    def close(self) -> None:
        """No more chunks: the thread finishes (and is not waited for)."""
        self._chunks.put(None)

    def _run(self) -> None:
        summary = None
        try:
            summary = self._check()
        except Exception:
            log.exception("checking an upload's lines failed; its batches will validate it themselves")
            while not self._ended:  # keep taking chunks, so the upload is never held up
                self._take()
        finally:
            self._call(lambda: self._outcome.done() or self._outcome.set_result(summary))

    def _check(self) -> FileSummary | None:
        check, splitter = FileCheck(self._limits), LineSplitter(self._limits.max_line_bytes)
        seen = UniqueIds(self._scratch)
        try:
            pending: list[str] = []
            while (chunk := self._take()) is not None:
                if check.clean:  # a spoiled file's remaining chunks are only taken
                    pending += check.feed(splitter.feed(chunk))
                    if len(pending) >= IDS_AT_ONCE:
                        pending = [] if seen.add(pending) else check.spoil()
            if check.clean and seen.add(pending + check.feed(splitter.end())):
                return check.summary()
            return None
        finally:
            seen.close()

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
