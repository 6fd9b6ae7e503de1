"""Cutting a batch's input into shards: ranges of lines that workers lease one at a time."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil

# Shard starts are noted every 1/GRAINS of a shard, so shards can be evened out once the count is known.
GRAINS = 8


@dataclass(frozen=True, slots=True)
class ShardSpan:
    first_line: int  # 1-based, as in the input file
    last_line: int
    offset: int  # byte offset of first_line in the file, so a worker starts reading there


class ShardCutter:
    """Fed each request line in order; cuts shards of at most about `lines_per_shard` requests.

    The shard count is rounded up to a multiple of `parallel` (how many shards of the batch run at
    once, each with an equal share of its max_concurrency) and requests are spread evenly over them.
    Shards that start together then end together: a last round of a few shards would otherwise run
    on those shards' small windows while the rest of the batch's concurrency stood idle.
    """

    def __init__(self, lines_per_shard: int, parallel: int = 1):
        self.lines_per_shard = lines_per_shard
        self._parallel = max(1, parallel)
        self._grain = max(1, lines_per_shard // GRAINS)
        self._lines = array("q")  # first line and offset of every grain: 16 bytes per grain, not per line
        self._offsets = array("q")
        self._count = 0
        self._last_line = 0

    def add(self, line: int, offset: int) -> None:
        if self._count % self._grain == 0:
            self._lines.append(line)
            self._offsets.append(offset)
        self._count += 1
        self._last_line = line

    def add_run(self, located: Sequence[tuple[int, int, object]]) -> None:
        """add() for each (line, offset, ...) of `located`, in order: slices pick the grains, no loop per line."""
        if not located:
            return
        for line, offset, _ in located[-self._count % self._grain :: self._grain]:
            self._lines.append(line)
            self._offsets.append(offset)
        self._count += len(located)
        self._last_line = located[-1][0]

    def add_lines(self, first_line: int, first_offset: int, raws: Sequence[bytes]) -> None:
        """add() for consecutive lines from `first_line`, starting at `first_offset`, each raw with its line break."""
        if not raws:
            return
        skip = -self._count % self._grain
        if skip < len(raws):
            offset = first_offset + sum(map(len, raws[:skip]))
            for at in range(skip, len(raws), self._grain):
                self._lines.append(first_line + at)
                self._offsets.append(offset)
                offset += sum(map(len, raws[at : at + self._grain]))
        self._count += len(raws)
        self._last_line = first_line + len(raws) - 1

    def grains(self) -> bytes:
        """The grains noted so far, for restore(): first lines then offsets, as little-endian int64."""
        both = array("q", self._lines)
        both.extend(self._offsets)
        if sys.byteorder == "big":
            both.byteswap()
        return both.tobytes()

    def restore(self, grains: bytes, count: int, last_line: int) -> None:
        """Take over what a cutter of the same lines_per_shard noted over `count` requests (at upload)."""
        both = array("q")
        both.frombytes(grains)
        if sys.byteorder == "big":
            both.byteswap()
        half = len(both) // 2
        self._lines, self._offsets = both[:half], both[half:]
        self._count, self._last_line = count, last_line

    def spans(self) -> list[ShardSpan]:
        grains = len(self._lines)
        if not grains:
            return []
        wanted = ceil(ceil(self._count / self.lines_per_shard) / self._parallel) * self._parallel
        shards = min(grains, wanted)
        starts = [grains * i // shards for i in range(shards)]  # strictly increasing, as shards <= grains
        ends = [self._lines[g] - 1 for g in starts[1:]] + [self._last_line]
        return [ShardSpan(self._lines[g], last, self._offsets[g]) for g, last in zip(starts, ends, strict=True)]
