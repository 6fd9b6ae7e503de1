"""The in_progress stage, one shard at a time: a sliding window of requests in flight, never a chunked gather.

Lines whose result is already recorded are skipped (invariant I3), so a resumed shard
picks up exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Callable

from batchgate import ids
from batchgate.domain.fairness import Flow
from batchgate.domain.lines import RequestLine, parse_line
from batchgate.domain.records import BatchRecord, Usage
from batchgate.domain.results import Outcome, result_line, usage_of
from batchgate.errors import Abandoned
from batchgate.store import ResultRow, ShardLease
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import input_lines
from batchgate.worker.lane import Lane
from batchgate.worker.writer import ResultWriter

log = logging.getLogger("batchgate.worker")


class StopReason(Enum):
    CANCELLED = "cancelled"  # let in-flight lines finish within a grace period
    EXPIRED = "expired"  # the window is over: abandon in-flight lines now
    LEASE_LOST = "lease_lost"  # another worker owns the work: stop writing at once


class StopSignal:
    """Why a run must stop, plus one event that wakes the run to look again (on stop or a freed slot).

    `lease_until` is when our lease may lapse, by the clock of the last successful renewal: past it
    another worker may own the batch, so nothing new is dispatched until a renewal succeeds. A
    process frozen past its lease (a long pause, a suspended VM) thus sends nothing on waking.
    """

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self.wake = asyncio.Event()
        self.lease_until = float("inf")

    def renewed(self, until: float) -> None:
        self.lease_until = until
        self.wake.set()

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.wake.set()

    async def wait(self) -> None:
        self.wake.clear()
        await self.wake.wait()

    async def may_retry(self, clock: Callable[[], float]) -> bool:
        """Before a retry: wait while the lease may have lapsed; False once the line must be left unanswered.

        A cancel still lets in-flight lines finish (their retries included) within its grace period.
        """
        while self.reason is None and clock() >= self.lease_until:
            await self.wait()
        return self.reason in (None, StopReason.CANCELLED)


async def execute(ctx: WorkerContext, batch: BatchRecord, stop: StopSignal, shard: ShardLease, lane: Lane,
                  sent_all: Callable[[], None] = lambda: None) -> None:
    """Send every unanswered line of one shard of `batch` through `lane`; return when all are recorded
    or `stop` fires. `sent_all` is called once the last line is on its way, while answers are awaited."""
    inflight: set[asyncio.Task] = set()

    def finished(task: asyncio.Task) -> None:
        inflight.discard(task)
        lane.give_back()

    flow = Flow(batch.scope.tenant, batch.id)  # its fair share at busy upstreams
    writer = ResultWriter(ctx.store, shard, ctx.settings.commit_interval_seconds)
    try:
        async with writer:
            with lane.joined(stop.wake):
                done = aiter(ctx.store.done_lines(batch.id, shard.first_line, shard.last_line))
                next_done = await anext(done, None)
                async for line, raw in input_lines(ctx, batch, shard):
                    while next_done is not None and next_done < line:
                        next_done = await anext(done, None)
                    if next_done == line:
                        continue
                    while stop.reason is None and (lane.full() or ctx.clock() >= stop.lease_until):
                        await stop.wait()
                    if stop.reason is not None or writer.failed:
                        break
                    request = parse_line(raw, line, batch.endpoint, ctx.settings.max_line_bytes)
                    task = asyncio.create_task(_send(ctx, batch.endpoint, request, writer, stop, flow))
                    lane.take()
                    inflight.add(task)
                    task.add_done_callback(finished)
                else:
                    sent_all()
                await _drain(inflight, stop, ctx.settings.cancel_grace_seconds)
    finally:
        for task in inflight:
            task.cancel()


async def _send(ctx: WorkerContext, endpoint: str, request: RequestLine, writer: ResultWriter,
                stop: StopSignal, flow: Flow) -> None:
    try:
        outcome = await ctx.router.send(endpoint, request.body, lambda: stop.may_retry(ctx.clock), flow)
    except Abandoned:
        return  # no result: the line stays unanswered for whoever carries the batch on
    except Exception as exc:  # a bug must cost one line, not the run (I5)
        log.exception("line %d of a %s batch failed inside batchgate", request.line, endpoint)
        outcome = Outcome(error_code="internal_error", error_message=f"batchgate failed on this line: {exc!r}")
    record = result_line(ids.request_id(), request.custom_id, outcome)
    await writer.add(ResultRow(request.line, outcome.ok, record), usage_of(outcome.body) if outcome.ok else Usage())


async def _drain(inflight: set[asyncio.Task], stop: StopSignal, grace: float) -> None:
    """Wait for in-flight lines: all of them normally, `grace` seconds after a cancel, none after expiry."""
    while inflight and stop.reason is None:
        await stop.wait()
    if stop.reason is StopReason.CANCELLED and inflight:
        await asyncio.wait(set(inflight), timeout=grace)
    for task in list(inflight):
        task.cancel()
    if inflight:
        await asyncio.wait(set(inflight))
