"""Blob storage for file bytes: what every backend (a local folder, S3) provides.

Writes are atomic: a half-written blob is never visible under its key.
"""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator, Protocol

CHUNK = 1024 * 1024


class BlobStore(Protocol):
    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int: ...
    def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def sweep_partial(self, older_than: float) -> int:
        """Remove half-written blobs untouched for `older_than` seconds (a crash mid-write); how many."""
        ...

    async def close(self) -> None: ...
