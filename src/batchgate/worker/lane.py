"""A lane: one window of lines in flight that runs shards of a batch back to back.

A shard that has sent its last line hands its lane on to the next shard of its batch, which
fills the slots that its predecessor's last answers free. Without lanes every shard's window
would drain to empty before the next shard began, leaving the upstream idle at each shard's end.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator


class Lane:
    def __init__(self, size: int):
        self.size = size
        self.in_flight = 0
        self._wakes: set[asyncio.Event] = set()  # one per shard running in the lane

    def full(self) -> bool:
        return self.in_flight >= self.size

    def take(self) -> None:
        self.in_flight += 1

    def give_back(self) -> None:
        self.in_flight -= 1
        for wake in self._wakes:
            wake.set()

    @contextlib.contextmanager
    def joined(self, wake: asyncio.Event) -> Iterator[None]:
        """While inside, `wake` is set whenever a slot of the lane frees up."""
        self._wakes.add(wake)
        try:
            yield
        finally:
            self._wakes.discard(wake)
