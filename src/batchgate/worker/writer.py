"""Grouped commits: results gather in memory for a few milliseconds, then land in one transaction."""

from __future__ import annotations

import asyncio
import time

from batchgate import metrics
from batchgate.domain.records import Usage
from batchgate.store import ResultRow, ShardLease, Store

# Rows waiting for a commit, at most. Past it a finished line waits (keeping its slot in the sliding
# window), so a database that stalls slows the batch down instead of filling memory (I4).
MAX_BACKLOG = 2000


class ResultWriter:
    def __init__(self, store: Store, lease: ShardLease, interval: float, max_backlog: int = MAX_BACKLOG):
        self._store, self._lease, self._interval = store, lease, interval
        self._rows: list[ResultRow] = []
        self._usage = Usage()
        self._copies = 0  # rows answered by another line's answer (a repeat sent once)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._max_backlog = max_backlog
        self._task: asyncio.Task | None = None
        self._closing = False

    async def room(self) -> None:
        """Wait while the backlog is full (unless the writer has stopped: then nobody would make room)."""
        while len(self._rows) >= self._max_backlog and not (self._task is not None and self._task.done()):
            self._room.clear()
            await self._room.wait()

    def add(self, row: ResultRow, usage: Usage, copied: bool = False) -> None:
        """Queue a result for the next commit; callers wait for room() before taking more work."""
        self._rows.append(row)
        self._copies += copied
        if usage.total_tokens or usage.input_tokens or usage.output_tokens:
            self._usage = self._usage + usage
        self._wake.set()

    async def __aenter__(self) -> ResultWriter:
        self._task = asyncio.create_task(self._loop(), name=f"writer-{self._lease.batch_id}-{self._lease.shard}")
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._closing = True
        self._wake.set()
        assert self._task is not None  # started in __aenter__
        await self._task  # the last flush; a LeaseLost or store error surfaces here

    async def _loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._closing:
                    await asyncio.sleep(self._interval)  # let a group gather
                await self.flush()
                if self._closing and not self._rows:
                    return
        finally:
            self._room.set()  # nobody may wait for room from a writer that has stopped

    async def flush(self) -> None:
        if not self._rows:
            return
        rows, usage, copies = self._rows, self._usage, self._copies
        self._rows, self._usage, self._copies = [], Usage(), 0
        self._room.set()
        started = time.perf_counter()
        await self._store.record_results(self._lease, rows, usage, copies)
        metrics.RESULT_COMMIT_LATENCY.observe(time.perf_counter() - started)

    @property
    def failed(self) -> bool:
        return self._task is not None and self._task.done() and not self._closing
