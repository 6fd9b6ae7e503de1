"""Reading a stored file as numbered lines without holding it whole (the cutting itself: domain/splitting.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

from batchgate.domain.splitting import LineSplitter, Located


async def located_lines(
    chunks: AsyncIterable[bytes], max_line_bytes: int, first_line: int = 1, first_offset: int = 0
) -> AsyncGenerator[Located, None]:
    """Yield (line number, byte offset where it starts, line without newline); None stands for a line
    over the limit, which is never buffered whole. A trailing '\\r' is dropped so CRLF files read like
    LF files. `first_line` and `first_offset` say where in the file the chunks start.
    """
    async for batch in located_line_batches(chunks, max_line_bytes, first_line, first_offset):
        for located in batch:
            yield located


async def located_line_batches(
    chunks: AsyncIterable[bytes], max_line_bytes: int, first_line: int = 1, first_offset: int = 0
) -> AsyncGenerator[list[Located], None]:
    """located_lines, a list per chunk: a reader of many short lines then loops in plain Python, not per await."""
    splitter = LineSplitter(max_line_bytes, first_line, first_offset)
    async for chunk in chunks:
        if batch := splitter.feed(chunk):
            yield batch
    if batch := splitter.end():
        yield batch
