"""Blob storage for file bytes: what every backend (a local folder, S3) provides.

Writes are atomic: a half-written blob is never visible under its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from typing import Protocol, TypeVar

from batchgate.errors import InsufficientStorage

CHUNK = 1024 * 1024
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})  # a full disk, or the user's quota used up


@contextlib.contextmanager
def space_errors() -> Iterator[None]:
    """A write that fails for lack of space raises InsufficientStorage (507), which says how to free some."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise InsufficientStorage() from exc
        raise


def chunk_sizes(first: int = CHUNK) -> Iterator[int]:
    """How much each read asks for: `first` bytes, doubling up to CHUNK.

    A reader that may stop early (a shard needs a few hundred lines) starts small, so what it
    reads and holds follows what it uses instead of a whole CHUNK; a long read soon reads CHUNKs.
    """
    size = max(1, min(first, CHUNK))
    while True:
        yield size
        size = min(2 * size, CHUNK)


T = TypeVar("T")


class _End:
    """read_ahead's mark for the end of its items (an item itself may be anything, None included)."""


async def read_ahead(items: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """`items`, the next one already on its way while the caller works on this one.

    A shard's senders take lines from the chunk in hand; without the next chunk read ahead, the
    sender that took a chunk's last line waited for the disk or S3, and the lane's slots behind it.
    """
    end = _End()
    pending: asyncio.Future[T | _End] = asyncio.ensure_future(anext(items, end))
    try:
        while not isinstance(item := await pending, _End):
            pending = asyncio.ensure_future(anext(items, end))
            yield item
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.wait([pending])
        await items.aclose()


class BlobStore(Protocol):
    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store `chunks` under `key`; their size. InsufficientStorage when there is no room."""
        ...

    def read(self, key: str, offset: int = 0, first_chunk: int = CHUNK) -> AsyncGenerator[bytes, None]:
        """The bytes from `offset` on, in chunks of chunk_sizes(first_chunk)."""
        ...

    async def delete(self, key: str) -> None: ...
    async def sweep_partial(self, older_than: float) -> int:
        """Remove half-written blobs untouched for `older_than` seconds (a crash mid-write); how many."""
        ...

    async def close(self) -> None: ...
