"""Dispatch order: the lines of a batch ordered by prefix group, so a group's lines are sent close together.

Groups come in the order of their first line, and a group's lines in file order. A batch whose groups
already lie in runs (one group, all lines distinct, or a file sorted by prefix) keeps its file order.
Otherwise the worker writes a dispatch copy: each line of the input, in this order, behind a header
with its original line number and its group (the group's first line number):

    LINE GROUP RAW

Shards are cut over the copy; results keep the original line numbers, so the output stays in input
order. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

HEADER_ROOM = 42  # two 64-bit numbers in decimal and their spaces: what a copy line adds to its input line


class CopyLine(NamedTuple):
    line: int  # 1-based, in the input file
    group: int  # the first line of its prefix group
    raw: bytes  # the input line, untouched


def encode(line: int, group: int, raw: bytes) -> bytes:
    return b"%d %d %s" % (line, group, raw)


def decode(copied: bytes) -> CopyLine:
    line, group, raw = copied.split(b" ", 2)
    return CopyLine(int(line), int(group), raw)


def lone_key(line: int) -> bytes:
    """The group key of a line with no prompt to share: a group of its own (9 bytes: never a prefix key)."""
    return b"\x00" + line.to_bytes(8, "big")


class RunCount:
    """Finds where runs of equal keys start in a stream: the groups lie in runs when no key starts two."""

    def __init__(self) -> None:
        self._last: bytes | None = None

    def heads(self, keys: Iterable[bytes]) -> list[bytes]:
        """The keys that start a run, in order (the stream goes on from the last call)."""
        started = []
        for key in keys:
            if key != self._last:
                started.append(key)
                self._last = key
        return started


def grouped_order(keys: Sequence[bytes]) -> list[CopyLine]:
    """The dispatch order of lines 1..len(keys) by their keys, in memory: the reference the scratch table follows."""
    first: dict[bytes, int] = {}
    for line, key in enumerate(keys, 1):
        first.setdefault(key, line)
    ordered = sorted(range(1, len(keys) + 1), key=lambda line: (first[keys[line - 1]], line))
    return [CopyLine(line, first[keys[line - 1]], b"") for line in ordered]
