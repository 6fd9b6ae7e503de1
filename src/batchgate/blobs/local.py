"""Blobs as files in a local folder; written to a temporary name, then renamed into place."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import mmap
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

from batchgate.blobs.base import CHUNK, chunk_sizes, space_errors
from batchgate.errors import ConfigError


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = root
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".partial").mkdir(exist_ok=True)
        except OSError as exc:
            raise unwritable(root, exc.strerror) from None
        if not os.access(root, os.W_OK) or not os.access(root / ".partial", os.W_OK):
            raise unwritable(root, "not writable")

    def _path(self, key: str) -> Path:
        # Keys are the server's own ("file-<hex>"), never a client's filename.
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[-2:] / key

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        partial = self.root / ".partial" / f"{key}.{secrets.token_hex(4)}"
        size = 0
        with space_errors():
            blob = await asyncio.to_thread(BlobFile, partial)
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    await asyncio.to_thread(blob.write, chunk)
                await asyncio.to_thread(blob.sync_close)
                final.parent.mkdir(exist_ok=True)
                await asyncio.to_thread(os.replace, partial, final)
            except BaseException:
                _discard(blob, partial)
                raise
        return size

    async def read(self, key: str, offset: int = 0, first_chunk: int = CHUNK) -> AsyncGenerator[bytes, None]:
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            if offset:
                handle.seek(offset)
            for size in chunk_sizes(first_chunk):
                if not (chunk := await asyncio.to_thread(handle.read, size)):
                    return
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def sweep_partial(self, older_than: float) -> int:
        return await asyncio.to_thread(remove_stale, self.root / ".partial", "*", older_than)

    async def close(self) -> None:
        return None


# Bytes gathered before each direct write: whole pages, many of them. 4 MiB wrote no faster, and its pages, all
# touched by a large blob, were half of what writing a million lines' output file added to the server's memory.
DIRECT_BUFFER = 1024 * 1024


class BlobFile:
    """A new blob's file, written around the page cache (O_DIRECT) where the filesystem allows it.

    Copying a blob into the page cache was the largest CPU cost of an upload: 0.3 to 1.5 CPU s per GB
    (more when the pages are new to the machine), against about 0.1 written directly, and the dirty
    pages then had to reach the disk before the closing fsync could return. Direct writes need
    page-aligned memory and whole blocks, so the chunks are gathered in an mmap'd buffer, written a
    buffer at a time; the tail, shorter than a buffer, goes through the page cache (O_DIRECT turned
    off), and fsync covers both. A filesystem that refuses direct writes is written through the page
    cache throughout. Readers see the same bytes either way.
    """

    def __init__(self, path: Path):
        self.direct = hasattr(os, "O_DIRECT")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            self._fd = os.open(path, flags | (os.O_DIRECT if self.direct else 0), 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not self.direct:
                raise
            self.direct = False
            self._fd = os.open(path, flags, 0o644)
        self._buffer = mmap.mmap(-1, DIRECT_BUFFER) if self.direct else None
        self._view = memoryview(self._buffer) if self._buffer is not None else None
        self._filled = 0

    def write(self, chunk: bytes) -> None:
        if self._view is None:
            self._write_all(memoryview(chunk))
            return
        piece = memoryview(chunk)
        while piece:
            taken = min(len(piece), DIRECT_BUFFER - self._filled)
            self._view[self._filled : self._filled + taken] = piece[:taken]
            self._filled += taken
            piece = piece[taken:]
            if self._filled == DIRECT_BUFFER:
                self._write_buffer()

    def sync_close(self) -> None:
        """Write what is left, wait for the disk to hold all of it, and close."""
        if self._filled:
            self._through_page_cache()  # a tail of any length: direct writes take whole blocks only
            self._write_buffer()
        os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1  # closed once: a second close could close a descriptor opened since
            os.close(fd)
        view, buffer, self._view, self._buffer = self._view, self._buffer, None, None
        if view is not None and buffer is not None:
            # A failed write's traceback may still hold a slice of the buffer: then it goes with that.
            with contextlib.suppress(BufferError):
                view.release()
                buffer.close()

    def _write_buffer(self) -> None:
        assert self._view is not None
        self._write_all(self._view[: self._filled])
        self._filled = 0

    def _write_all(self, data: memoryview) -> None:
        while data:
            try:
                data = data[os.write(self._fd, data) :]
            except OSError as exc:
                # A filesystem that took the flag but refuses direct writes, or a short write that left
                # the file's end off a block boundary: the rest goes through the page cache.
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._through_page_cache()

    def _through_page_cache(self) -> None:
        if self.direct:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self.direct = False


def remove_stale(folder: Path, pattern: str, older_than: float) -> int:
    """Delete files in `folder` matching `pattern` whose last write is over `older_than` seconds ago."""
    cutoff, removed = time.time() - older_than, 0
    for path in folder.glob(pattern):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # someone else cleaned it
    return removed


def unwritable(folder: Path, reason: str | None) -> ConfigError:
    return ConfigError(
        f"cannot write to the storage folder {folder} ({reason or 'not writable'}): make it writable "
        f"by this user, or choose another with --data-dir or BATCHGATE_STORAGE_URL"
    )


def _discard(blob: BlobFile, partial: Path) -> None:
    with contextlib.suppress(OSError):
        blob.close()
    partial.unlink(missing_ok=True)
