"""Prefix groups taking turns: for upstreams whose prompt cache is per slot (llama.cpp).

A per-slot cache serves a line's prefix only once the previous line of its group has finished: its
slot then holds the prompt, and llama.cpp saves it for any slot once that slot moves on. Two lines of
one group running at once each compute the prefix. So a group has one line out while a line of
another group is waiting: the next line taken is the first waiting line whose group has none out.
Only when every waiting line's group has one out does a second line of a busy group go, so the
upstream is never left idle for the sake of its cache.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupTurns(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[Hashable, deque[T]] = {}  # by group, in the order each group began to wait
        self._out: Counter[Hashable] = Counter()  # lines taken and not yet finished, by group
        self._free: deque[Hashable] = deque()  # groups that may go, in the order they became free
        self.waiting = 0
        self.out = 0

    def put(self, group: Hashable, item: T) -> None:
        self._put(group, item, front=False)

    def take_free(self) -> tuple[Hashable, T] | None:
        """The first waiting line of the group that has waited longest with none out; None if every waiting
        line's group has one out."""
        while self._free:
            group = self._free.popleft()
            if group in self._waiting and not self._out[group]:  # else a stale entry: taken or busy since
                return group, self._pop(group)
        return None

    def take_any(self) -> tuple[Hashable, T] | None:
        """The first line of the group that has waited longest, out or not; None if nothing waits."""
        for group in self._waiting:
            return group, self._pop(group)
        return None

    def finished(self, group: Hashable) -> None:
        """A line of `group` taken earlier is answered (or given up): the group's next line may go."""
        self._out[group] -= 1
        self.out -= 1
        if self._out[group] <= 0:
            del self._out[group]
            if group in self._waiting:
                self._free.append(group)

    def give_back(self, group: Hashable, item: T) -> None:
        """A taken line that was not sent after all goes back to the head of its group."""
        self.finished(group)
        self._put(group, item, front=True)

    def _put(self, group: Hashable, item: T, front: bool) -> None:
        lines = self._waiting.setdefault(group, deque())
        if front:
            lines.appendleft(item)
        else:
            lines.append(item)
        self.waiting += 1
        if len(lines) == 1 and not self._out[group]:
            self._free.append(group)

    def _pop(self, group: Hashable) -> T:
        lines = self._waiting[group]
        item = lines.popleft()
        if not lines:
            del self._waiting[group]
        self.waiting -= 1
        self.out += 1
        self._out[group] += 1
        return item
