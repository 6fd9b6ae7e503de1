"""Splitting a stream of byte chunks into numbered lines without holding the whole file."""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator


class LineTooLong(Exception):
    pass


async def numbered_lines(chunks: AsyncIterable[bytes], max_line_bytes: int) -> AsyncIterator[tuple[int, bytes | None]]:
    """Yield (1-based line number, line without newline); None stands for a line over the limit.

    A trailing '\\r' is dropped so CRLF files read like LF files. An over-long line is never
    buffered whole: its bytes are discarded until its newline.
    """
    line_no = 0
    pending = b""
    skipping = False
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            line_no += 1
            if skipping:
                yield line_no, None
                skipping = False
            else:
                line = (pending + chunk[start:end] if pending else chunk[start:end]).removesuffix(b"\r")
                pending = b""
                yield line_no, None if len(line) > max_line_bytes else line
            start = end + 1
        if not skipping:
            pending += chunk[start:]
            if len(pending) > max_line_bytes + 1:
                pending, skipping = b"", True
    if skipping:
        yield line_no + 1, None
    elif pending:
        line = pending.removesuffix(b"\r")
        yield line_no + 1, None if len(line) > max_line_bytes else line
