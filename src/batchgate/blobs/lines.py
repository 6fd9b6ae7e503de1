"""Splitting a stream of byte chunks into numbered lines without holding the whole file."""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator


class LineTooLong(Exception):
    pass


async def numbered_lines(chunks: AsyncIterable[bytes], max_line_bytes: int,
                         first_line: int = 1) -> AsyncIterator[tuple[int, bytes | None]]:
    """Yield (line number, line without newline); None stands for a line over the limit.

    A trailing '\\r' is dropped so CRLF files read like LF files. An over-long line is never
    buffered whole: its bytes are discarded until its newline.
    """
    async for line_no, _, line in located_lines(chunks, max_line_bytes, first_line):
        yield line_no, line


async def located_lines(chunks: AsyncIterable[bytes], max_line_bytes: int, first_line: int = 1,
                        first_offset: int = 0) -> AsyncIterator[tuple[int, int, bytes | None]]:
    """Like numbered_lines, with the byte offset where each line starts (so a reader can start there later).

    `first_line` and `first_offset` say where in the file the chunks start.
    """
    line_no = first_line - 1
    pending = b""
    skipping = False
    chunk_at = line_at = first_offset  # file offsets of the current chunk and of the current line
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            line_no += 1
            if skipping:
                yield line_no, line_at, None
                skipping = False
            else:
                line = (pending + chunk[start:end] if pending else chunk[start:end]).removesuffix(b"\r")
                pending = b""
                yield line_no, line_at, None if len(line) > max_line_bytes else line
            start = end + 1
            line_at = chunk_at + start
        if not skipping:
            pending += chunk[start:]
            if len(pending) > max_line_bytes + 1:
                pending, skipping = b"", True
        chunk_at += len(chunk)
    if skipping:
        yield line_no + 1, line_at, None
    elif pending:
        line = pending.removesuffix(b"\r")
        yield line_no + 1, line_at, None if len(line) > max_line_bytes else line
