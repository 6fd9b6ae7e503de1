"""What the shards of one running batch share on this worker: made by the first, dropped with the last."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from batchgate.domain.group_turns import LinesOut

T = TypeVar("T")


class PerBatch(Generic[T]):
    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._batches: dict[str, tuple[T, int]] = {}

    @contextmanager
    def of(self, batch_id: str) -> Iterator[T]:
        """The batch's shared T while inside; a shard of the batch that enters later gets the same one."""
        shared, users = self._batches.get(batch_id) or (self._make(), 0)
        self._batches[batch_id] = (shared, users + 1)
        try:
            yield shared
        finally:
            shared, users = self._batches[batch_id]
            if users == 1:
                del self._batches[batch_id]
            else:
                self._batches[batch_id] = (shared, users - 1)


class SharedTurns:
    """Behind a prompt cache per slot, what a batch's shards share to let its prefix groups take turns
    (domain/group_turns.py): its lines out by group, and an event set whenever one of them ends."""

    def __init__(self) -> None:
        self.out = LinesOut()
        self.line_ended = asyncio.Event()

    def end(self, group: Hashable) -> None:
        self.out.end(group)
        self.line_ended.set()
