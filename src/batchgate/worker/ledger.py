"""Finding duplicate custom_ids for the validating stage without holding every id in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from batchgate.worker.scratch_ids import CustomIds

KEEP = 1000


class CustomIdLedger:
    """CustomIds whose adds run on a thread while the caller parses the next lines, one add at a time.

    The repeats found are kept, the `keep` earliest: a report lists no more than that.
    """

    def __init__(self, folder: Path, keep: int = KEEP):
        self._ids = CustomIds(folder)
        self._keep = keep
        self._repeats: list[tuple[str, int, int]] = []
        self._adding: asyncio.Future | None = None

    async def add(self, pairs: list[tuple[str, int]]) -> None:
        """(custom_id, line) pairs in line order, after those of earlier adds."""
        await self.settle()
        self._adding = asyncio.ensure_future(asyncio.to_thread(self._ids.add, pairs))

    async def settle(self) -> None:
        """Wait for the insert still running, if any."""
        adding, self._adding = self._adding, None
        if adding is not None:
            repeats = await adding
            self._repeats += repeats[:max(0, self._keep - len(self._repeats))]

    async def duplicates(self, limit: int) -> list[tuple[str, int, int]]:
        """(custom_id, first line, repeating line) for each repeat, earliest repeats first."""
        await self.settle()
        return self._repeats[:limit]

    def close(self) -> None:
        self._ids.close()
