"""Prefix groups taking turns: for upstreams whose prompt cache is per slot (llama.cpp).

A per-slot cache serves a line's prefix only once the previous line of its group has finished: its
slot then holds the prompt, and llama.cpp saves it for any slot once that slot moves on. Two lines of
one group running at once each compute the prefix. So a group has one line out while a line of
another group is waiting: the next line taken is the first waiting line whose group has none out.
Only when every waiting line's group has one out may a second line of a busy group go (the caller
decides when: while the upstream would otherwise leave a slot idle).

Lines out are counted per batch (`LinesOut`, shared by the batch's shards on a worker); each shard
keeps its own waiting lines (`GroupTurns`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class LinesOut:
    """A batch's lines sent and not yet answered, by prefix group."""

    def __init__(self) -> None:
        self._by_group: Counter[Hashable] = Counter()
        self.total = 0

    def busy(self, group: Hashable) -> bool:
        return self._by_group[group] > 0

    def start(self, group: Hashable) -> None:
        self._by_group[group] += 1
        self.total += 1

    def end(self, group: Hashable) -> None:
        """A line of `group` is answered (or given up): the group's next line may go."""
        self._by_group[group] -= 1
        self.total -= 1
        if self._by_group[group] <= 0:
            del self._by_group[group]


class GroupTurns(Generic[T]):
    """One shard's lines read and not yet sent, by group, taken so that groups take turns."""

    def __init__(self, out: LinesOut) -> None:
        self.out = out
        self._waiting: dict[Hashable, deque[T]] = {}  # by group, in the order each group began to wait
        self.waiting = 0

    def put(self, group: Hashable, item: T) -> None:
        self._waiting.setdefault(group, deque()).append(item)
        self.waiting += 1

    def take_free(self) -> tuple[Hashable, T] | None:
        """The first waiting line of the group that has waited longest with none out; None if every waiting
        line's group has one out."""
        for group in self._waiting:
            if not self.out.busy(group):
                return group, self._take(group)
        return None

    def take_any(self) -> tuple[Hashable, T] | None:
        """The first line of the group that has waited longest, out or not; None if nothing waits."""
        for group in self._waiting:
            return group, self._take(group)
        return None

    def give_back(self, group: Hashable, item: T) -> None:
        """A taken line that was not sent after all goes back to the head of its group."""
        self.out.end(group)
        self._waiting.setdefault(group, deque()).appendleft(item)
        self.waiting += 1

    def _take(self, group: Hashable) -> T:
        lines = self._waiting[group]
        item = lines.popleft()
        if not lines:
            del self._waiting[group]
        self.waiting -= 1
        self.out.start(group)
        return item
