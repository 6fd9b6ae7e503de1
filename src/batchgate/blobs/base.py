"""Blob storage for file bytes: what every backend (a local folder, S3) provides.

Writes are atomic: a half-written blob is never visible under its key.
"""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator, Iterator, Protocol

CHUNK = 1024 * 1024


def chunk_sizes(first: int = CHUNK) -> Iterator[int]:
    """How much each read asks for: `first` bytes, doubling up to CHUNK.

    A reader that may stop early (a shard needs a few hundred lines) starts small, so what it
    reads and holds follows what it uses instead of a whole CHUNK; a long read soon reads CHUNKs.
    """
    size = max(1, min(first, CHUNK))
    while True:
        yield size
        size = min(2 * size, CHUNK)


class BlobStore(Protocol):
    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int: ...
    def read(self, key: str, offset: int = 0, first_chunk: int = CHUNK) -> AsyncIterator[bytes]:
        """The bytes from `offset` on, in chunks of chunk_sizes(first_chunk)."""
        ...
    async def delete(self, key: str) -> None: ...
    async def sweep_partial(self, older_than: float) -> int:
        """Remove half-written blobs untouched for `older_than` seconds (a crash mid-write); how many."""
        ...

    async def close(self) -> None: ...
