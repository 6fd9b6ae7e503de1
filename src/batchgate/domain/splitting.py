"""Cutting a stream of byte chunks into numbered lines, each with the byte offset where it starts."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from itertools import accumulate, count, islice, repeat
from typing import NamedTuple


class Located(NamedTuple):
    """One line of a file, and where it is."""

    line: int  # 1-based line number
    offset: int  # byte offset in the file where the line starts
    raw: bytes | None  # the line without its newline (nor a trailing \r); None when over the size limit


class LineSplitter:
    """Cuts chunks into located lines; the bytes after the last newline wait for the next chunk."""

    def __init__(self, max_line_bytes: int, first_line: int = 1, first_offset: int = 0):
        self.max_line_bytes = max_line_bytes
        self.line_no = first_line - 1  # the last line handed out
        self.line_at = self.chunk_at = first_offset  # file offsets of the line being assembled, of the next chunk
        self.pending = b""
        self.skipping = False  # the line being assembled is over the limit already: its bytes are dropped

    def feed(self, chunk: bytes) -> list[Located]:
        """The lines the chunk completes. Every step after the first line runs over whole lists in C:
        this runs once per line of every file in every pass, and a Python loop building each Located
        would cost more than the cutting itself. BytesIO.readlines finds each newline with memchr,
        where bytes.split compares byte by byte.
        """
        parts = BytesIO(chunk).readlines()  # each with its newline; the last one may have none yet
        tail = b"" if not parts or parts[-1].endswith(b"\n") else parts.pop()
        located: list[Located] = []
        if parts:
            limit, line_no, n = self.max_line_bytes, self.line_no + 1, len(parts)
            first = None if self.skipping else self._line(self.pending + parts[0][:-1])
            located.append(Located(line_no, self.line_at, first))
            ends = list(accumulate(map(len, parts), initial=self.chunk_at))  # where each part starts, and the end
            whole = list(map(bytes.removesuffix, islice(parts, 1, None), repeat(b"\n")))
            if b"\r" in chunk:
                whole = list(map(bytes.removesuffix, whole, repeat(b"\r")))
            lines: Sequence[bytes | None] = whole
            if whole and max(map(len, whole)) > limit:
                lines = [None if len(line) > limit else line for line in whole]
            located += map(tuple.__new__, repeat(Located), zip(count(line_no + 1), islice(ends, 1, None), lines))
            self.line_no, self.line_at = line_no + n - 1, ends[-1]
            self.pending, self.skipping = b"", False
        self.chunk_at += len(chunk)
        if not self.skipping:
            self.pending += tail
            if len(self.pending) > self.max_line_bytes + 1:
                self.pending, self.skipping = b"", True
        return located

    def end(self) -> list[Located]:
        """The last line, when the file does not end with a newline."""
        if self.skipping:
            return [Located(self.line_no + 1, self.line_at, None)]
        return [Located(self.line_no + 1, self.line_at, self._line(self.pending))] if self.pending else []

    def _line(self, raw: bytes) -> bytes | None:
        line = raw.removesuffix(b"\r")
        return None if len(line) > self.max_line_bytes else line
