"""worker/writer.py: a stalled database makes finished lines wait instead of piling up in memory."""

from __future__ import annotations

import asyncio

import pytest

from batchgate.domain.records import Usage
from batchgate.store import ResultRow, ShardLease
from batchgate.worker.writer import ResultWriter

LEASE = ShardLease("batch_x", shard=0, worker_id="w", first_line=1, last_line=100, offset=0, window=10)


class StallingStore:
    """Records results only when `go` is set: a database stuck on a slow disk (test double)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.recorded: list[int] = []

    async def record_results(self, lease, rows, usage, copies=0) -> None:
        await self.go.wait()
        self.recorded.extend(r.line for r in rows)


async def add(writer: ResultWriter, line: int) -> None:
    """As a sender does: wait for room in the backlog, then hand the row over."""
    await writer.room()
    writer.add(ResultRow(line, True, b"{}"), Usage())


async def test_adds_wait_while_the_backlog_is_full_and_resume_after_a_commit():
    store = StallingStore()
    writer = ResultWriter(store, LEASE, interval=0.001, max_backlog=10)
    async with writer:
        first = [asyncio.create_task(add(writer, i)) for i in range(5)]
        await asyncio.gather(*first)
        await asyncio.sleep(0.02)  # the writer took those 5 and is stuck committing them
        more = [asyncio.create_task(add(writer, i)) for i in range(5, 25)]
        await asyncio.sleep(0.02)
        assert sum(t.done() for t in more) == 10  # ten fit in the backlog; the other ten wait
        store.go.set()
        await asyncio.wait_for(asyncio.gather(*more), 2)
    assert sorted(store.recorded) == list(range(25))


async def test_a_writer_that_failed_lets_waiting_adds_go():
    class Broken(StallingStore):
        async def record_results(self, *args) -> None:
            await asyncio.sleep(0.01)
            raise RuntimeError("disk gone")

    writer = ResultWriter(Broken(), LEASE, interval=0.001, max_backlog=2)
    await writer.__aenter__()
    adds = [asyncio.create_task(add(writer, i)) for i in range(10)]
    await asyncio.wait_for(asyncio.gather(*adds), 2)
    assert writer.failed
    with pytest.raises(RuntimeError, match="disk gone"):
        await writer.__aexit__(None, None, None)  # the failure surfaces to the run, as before
