"""Cutting a batch's input into shards: ranges of lines that workers lease one at a time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ShardSpan:
    first_line: int  # 1-based, as in the input file
    last_line: int
    offset: int  # byte offset of first_line in the file, so a worker starts reading there


class ShardCutter:
    """Fed each request line in order; every `lines_per_shard` requests start a new shard."""

    def __init__(self, lines_per_shard: int):
        self.lines_per_shard = lines_per_shard
        self._starts: list[tuple[int, int]] = []  # (first line, offset) of each shard
        self._count = 0
        self._last_line = 0

    def add(self, line: int, offset: int) -> None:
        if self._count % self.lines_per_shard == 0:
            self._starts.append((line, offset))
        self._count += 1
        self._last_line = line

    def spans(self) -> list[ShardSpan]:
        ends = [first - 1 for first, _ in self._starts[1:]] + [self._last_line]
        return [ShardSpan(first, last, offset) for (first, offset), last in zip(self._starts, ends)]
