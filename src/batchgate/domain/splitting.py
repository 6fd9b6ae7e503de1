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


class Block(NamedTuple):
    """Consecutive whole lines, each with its line break, all within the size limit: what feed_block gives for a
    chunk whose lines are all of a size to check. A run of good lines is judged from it without a Located
    per line, nor a copy of each line without its newline (a JSON parse reads the line break as whitespace).
    """

    first_line: int  # the line number of raws[0]
    first_offset: int  # where raws[0] starts in the file
    raws: list[bytes]  # each line with its "\n" (and any "\r" before it)

    def located(self, start: int = 0) -> list[Located]:
        """Located lines from raws[start], as LineSplitter.feed gives them."""
        offset = self.first_offset + sum(map(len, self.raws[:start]))
        located = []
        for line, raw in enumerate(self.raws[start:], self.first_line + start):
            located.append(Located(line, offset, raw[:-1].removesuffix(b"\r")))
            offset += len(raw)
        return located


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

    def feed_block(self, chunk: bytes) -> Block | list[Located]:
        """feed(), as a Block when the chunk completes lines and every one is within the size limit (the usual
        chunk); otherwise as feed() gives it."""
        if self.skipping:  # a line over the limit goes on: feed() drops its bytes
            return self.feed(chunk)
        parts = BytesIO(chunk).readlines()
        tail = parts.pop() if parts and not parts[-1].endswith(b"\n") else b""
        if not parts:
            return self.feed(chunk)
        if self.pending:
            parts[0] = self.pending + parts[0]
        limit = self.max_line_bytes
        if max(map(len, parts)) > limit + 1 and any(len(raw[:-1].removesuffix(b"\r")) > limit for raw in parts):
            return self.feed(chunk)  # it reads the chunk again, for the None of each line over the limit
        block = Block(self.line_no + 1, self.line_at, parts)
        self.line_no += len(parts)
        self.chunk_at += len(chunk)
        self.line_at = self.chunk_at - len(tail)
        self.pending, self.skipping = (b"", True) if len(tail) > limit + 1 else (tail, False)
        return block

    def end(self) -> list[Located]:
        """The last line, when the file does not end with a newline."""
        if self.skipping:
            return [Located(self.line_no + 1, self.line_at, None)]
        return [Located(self.line_no + 1, self.line_at, self._line(self.pending))] if self.pending else []

    def _line(self, raw: bytes) -> bytes | None:
        line = raw.removesuffix(b"\r")
        return None if len(line) > self.max_line_bytes else line
