"""Blobs as files in a local folder; written to a temporary name, then renamed into place."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path
from typing import BinaryIO

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
            handle = await asyncio.to_thread(open, partial, "wb")
            try:
                writer = WritebackWriter(handle)
                async for chunk in chunks:
                    size += len(chunk)
                    await asyncio.to_thread(writer.write, chunk)
                await asyncio.to_thread(_sync_close, handle)
                final.parent.mkdir(exist_ok=True)
                await asyncio.to_thread(os.replace, partial, final)
            except BaseException:
                _discard(handle, partial)
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


WRITEBACK_BYTES = 32 * 1024 * 1024  # bytes handed to the disk at once while a blob is written


class WritebackWriter:
    """Writes a file's chunks, and has the disk start on every WRITEBACK_BYTES of them as they are written.

    Left alone, the kernel keeps a new file's pages dirty in memory (for 30 s, or until gigabytes are
    dirty), so the fsync that closes the blob would write the whole file after its last byte arrived:
    over a second for 1 GB. POSIX_FADV_DONTNEED on the range just written starts its writeback without
    waiting for it (dirty pages and pages being written stay cached), so the fsync waits for the tail alone.
    """

    def __init__(self, handle: BinaryIO, every: int = WRITEBACK_BYTES):
        self._handle, self._every = handle, every
        self._written = self._handed = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._written += len(chunk)
        if self._written - self._handed >= self._every and hasattr(os, "posix_fadvise"):
            self._handle.flush()
            os.posix_fadvise(self._handle.fileno(), self._handed, self._written - self._handed, os.POSIX_FADV_DONTNEED)
            self._handed = self._written


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


def _discard(handle, partial: Path) -> None:
    # On a full disk, closing tries to flush the buffered tail and fails again: the partial goes anyway.
    with contextlib.suppress(OSError):
        handle.close()
    partial.unlink(missing_ok=True)


def _sync_close(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
