"""Custom_ids that count up: request-1, request-2, … or task-00001, task-00002, ….

Most batch files name their lines this way. A stretch of such ids is known by its prefix, its first
number and how many follow, so a check for repeats can keep a few numbers where a set keeps every id
(scratch_ids.UniqueIds). Only ever a shortcut for "no repeat": numbers of one prefix that meet count
as a repeat even when written apart ("r5" beside "r005"), and a repeat only sends a file to the exact
check of its batch's validation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple

DIGITS = "0123456789"
MAX_DIGITS = 18  # numbers of machine size; an id with a longer number is left to the set


class Run(NamedTuple):
    """Ids `prefix` + each number of [first, end), written with at least `width` digits (zero-padded)."""

    prefix: str
    first: int
    end: int
    width: int  # 0: written as str() writes them

    def ids(self, start: int, stop: int) -> list[str]:
        """The ids of the numbers [start, stop) of this run, as the file wrote them."""
        prefix, width = self.prefix, self.width
        if width:
            return [prefix + str(number).zfill(width) for number in range(start, stop)]
        return [prefix + str(number) for number in range(start, stop)]


def counted_run(ids: list[str]) -> Run | None:
    """The Run that `ids` are, in this order, or None: each id is the first one's prefix and the number
    after the one before, written as the first id writes its number (zero-padded to its width, or not)."""
    if not ids:
        return None
    head = ids[0]
    prefix = head.rstrip(DIGITS)
    digits = head[len(prefix) :]
    if not digits or len(digits) > MAX_DIGITS:
        return None
    first = int(digits)
    run = Run(prefix, first, first + len(ids), len(digits) if digits[0] == "0" else 0)
    return run if run.ids(run.first, run.end) == ids else None


class Taken:
    """The numbers each prefix's runs took so far: sorted, disjoint ranges, adjacent ones of one width merged."""

    def __init__(self) -> None:
        self._by_prefix: dict[str, list[Run]] = {}

    @property
    def ranges(self) -> int:
        """How many are kept: the caller bounds it."""
        return sum(map(len, self._by_prefix.values()))

    def take(self, run: Run) -> bool:
        """Add `run`'s numbers; False, adding nothing, if its prefix has any of them already."""
        runs = self._by_prefix.setdefault(run.prefix, [])
        at = bisect_right(runs, run.first, key=_first)  # runs[at - 1] starts at or before run.first
        before = runs[at - 1] if at else None
        after = runs[at] if at < len(runs) else None
        if (before is not None and before.end > run.first) or (after is not None and after.first < run.end):
            return False
        if before is not None and before.end == run.first and before.width == run.width:
            run = runs.pop(at - 1)._replace(end=run.end)
            at -= 1
        if after is not None and after.first == run.end and after.width == run.width:
            run = run._replace(end=runs.pop(at).end)
        runs.insert(at, run)
        return True

    def __iter__(self) -> Iterator[Run]:
        for runs in self._by_prefix.values():
            yield from runs


def _first(run: Run) -> int:
    return run.first
