"""Reading a stored file as numbered lines without holding it whole (the cutting itself: domain/splitting.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

from batchgate.domain.splitting import LineSplitter, Located


async def located_lines(
    chunks: AsyncIterable[bytes], max_line_bytes: int, first_line: int = 1, first_offset: int = 0
) -> AsyncGenerator[Located, None]:
    """Each line of the file as a Located; a line over the limit (raw None) is never buffered whole.

    A trailing '\\r' is dropped so CRLF files read like LF files. `first_line` and `first_offset` say
    where in the file the chunks start.
    """
    async for chunk in located_line_chunks(chunks, max_line_bytes, first_line, first_offset):
        for located in chunk:
            yield located


async def located_line_chunks(
    chunks: AsyncIterable[bytes], max_line_bytes: int, first_line: int = 1, first_offset: int = 0
) -> AsyncGenerator[list[Located], None]:
    """located_lines, a list per chunk read: a reader of many short lines then loops in plain Python, not per await."""
    splitter = LineSplitter(max_line_bytes, first_line, first_offset)
    async for chunk in chunks:
        if located := splitter.feed(chunk):
            yield located
    if located := splitter.end():
        yield located
