"""A lane: one window of lines in flight that runs shards of a batch back to back.

A shard that has sent its last line hands its lane on to the next shard of its batch, which
fills the slots that its predecessor's last answers free. Without lanes every shard's window
would drain to empty before the next shard began, leaving the upstream idle at each shard's end.

When no shard of the batch is left to hand on to, the lane retires into another lane of the
same batch in this worker: each slot it frees from then on widens that lane, so the batch's
last shards run on the whole window instead of a few lanes' share of it. Slots move one at a
time as they free up, so the lanes' lines in flight never exceed their sizes' sum.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Lane:
    def __init__(self, size: int):
        self.size = size
        self.in_flight = 0
        self._wakes: set[asyncio.Event] = set()  # one per shard running in the lane
        self._heir: Lane | None = None

    def full(self) -> bool:
        return self.in_flight >= self.size

    def take(self) -> None:
        self.in_flight += 1

    def give_back(self) -> None:
        self.in_flight -= 1
        if self._heir is not None:
            self.size -= 1
            self._heir.grow(1)
        self._wake()

    def grow(self, slots: int) -> None:
        if self._heir is not None:
            self._heir.grow(slots)  # retired meanwhile: pass them on
            return
        self.size += slots
        self._wake()

    def retire(self, heir: Lane) -> None:
        """No shard is left for this lane: its free slots go to `heir` now, the others as they free up."""
        free = max(0, self.size - self.in_flight)
        self.size -= free
        self._heir = heir
        heir.grow(free)

    @contextlib.contextmanager
    def joined(self, wake: asyncio.Event) -> Iterator[None]:
        """While inside, `wake` is set whenever a slot of the lane frees up or the lane grows."""
        self._wakes.add(wake)
        try:
            yield
        finally:
            self._wakes.discard(wake)

    def _wake(self) -> None:
        for wake in self._wakes:
            wake.set()
