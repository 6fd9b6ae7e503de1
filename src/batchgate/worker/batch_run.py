"""Driving one batch from wherever it stands to a terminal status, under a lease.

Each status has one step (a registry, below); a step does its work and moves the status
with a compare-and-set, then the loop reads the batch again. A crash anywhere leaves a
status from which the same step resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Awaitable, Callable

from batchgate.domain.records import BatchRecord
from batchgate.domain.status import TERMINAL, BatchStatus
from batchgate.errors import InputMissing, LeaseLost
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import StopReason, StopSignal, execute
from batchgate.worker.finalize import fail_without_input, finalize
from batchgate.worker.validate import validate_input

log = logging.getLogger("batchgate.worker")
S = BatchStatus
EXPIRABLE = frozenset({S.VALIDATING, S.IN_PROGRESS})


class BatchRun:
    def __init__(self, ctx: WorkerContext, batch_id: str):
        self.ctx = ctx
        self.batch_id = batch_id
        self.stop = StopSignal()

    async def run(self) -> None:
        ctx = self.ctx
        claimed_at = ctx.clock()
        if not await ctx.store.claim(self.batch_id, ctx.worker_id, claimed_at, ctx.settings.lease_seconds):
            return
        self.stop.renewed(claimed_at + self._safe_lease())
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while (batch := await ctx.store.get_batch(self.batch_id)) and batch.status not in TERMINAL:
                step = _expire if self._expired(batch) else STEPS[batch.status]
                try:
                    await step(self, batch)
                except InputMissing as missing:
                    log.error("batch %s ends failed with the results it has: %s", batch.id, missing.message)
                    await fail_without_input(ctx, batch, missing)
                if self.stop.reason is StopReason.LEASE_LOST:
                    return
        except LeaseLost:
            log.warning("batch %s: lease lost; another worker carries on", self.batch_id)
        finally:
            heartbeat.cancel()
            await ctx.store.release(self.batch_id, ctx.worker_id)

    def _heartbeat_interval(self) -> float:
        return min(self.ctx.settings.poll_interval_seconds, self.ctx.settings.lease_seconds / 3)

    def _safe_lease(self) -> float:
        # Stop dispatching one heartbeat before the lease could lapse.
        return self.ctx.settings.lease_seconds - self._heartbeat_interval()

    def _expired(self, batch: BatchRecord) -> bool:
        return batch.status in EXPIRABLE and self.ctx.clock() >= batch.expires_at

    async def _heartbeat(self) -> None:
        ctx = self.ctx
        expires_at = (await ctx.store.get_batch(self.batch_id)).expires_at
        while True:
            await asyncio.sleep(self._heartbeat_interval())
            renewing_at = ctx.clock()
            try:
                status = await ctx.store.renew(self.batch_id, ctx.worker_id, renewing_at, ctx.settings.lease_seconds)
            except LeaseLost:
                self.stop.stop(StopReason.LEASE_LOST)
                return
            except Exception:
                log.exception("batch %s: heartbeat failed; retrying", self.batch_id)
                continue
            self.stop.renewed(renewing_at + self._safe_lease())
            if status is S.CANCELLING:
                self.stop.stop(StopReason.CANCELLED)
            elif status in EXPIRABLE and ctx.clock() >= expires_at:
                self.stop.stop(StopReason.EXPIRED)


async def _validate(run: BatchRun, batch: BatchRecord) -> None:
    report = await validate_input(run.ctx, batch)
    if report.ok:
        await run.ctx.store.transition(batch.id, S.VALIDATING, S.IN_PROGRESS, run.ctx.now(),
                                       {"total": report.request_count, "model": report.model})
    else:
        await run.ctx.store.transition(batch.id, S.VALIDATING, S.FAILED, run.ctx.now(), {"errors": report.to_wire()})


async def _execute(run: BatchRun, batch: BatchRecord) -> None:
    await execute(run.ctx, batch, run.stop)
    if run.stop.reason is None:
        await run.ctx.store.transition(batch.id, S.IN_PROGRESS, S.FINALIZING, run.ctx.now())


async def _complete(run: BatchRun, batch: BatchRecord) -> None:
    await finalize(run.ctx, batch, S.COMPLETED)


async def _cancel(run: BatchRun, batch: BatchRecord) -> None:
    await _end(run, batch, S.CANCELLED)


async def _expire(run: BatchRun, batch: BatchRecord) -> None:
    await _end(run, batch, S.EXPIRED)


async def _end(run: BatchRun, batch: BatchRecord, target: BatchStatus) -> None:
    """Cancel or expire: answered lines keep their results; every other line gets the batch's reason."""
    if batch.in_progress_at is None:
        # Never validated to the end: count its lines first, or record why the file is unusable.
        report = await validate_input(run.ctx, batch)
        if not report.ok:
            await run.ctx.store.transition(batch.id, batch.status, target, run.ctx.now(),
                                           {"errors": report.to_wire()})
            return
        batch = dataclasses.replace(batch, total=report.request_count)
    await finalize(run.ctx, batch, target)


Step = Callable[[BatchRun, BatchRecord], Awaitable[None]]
STEPS: dict[BatchStatus, Step] = {
    S.VALIDATING: _validate,
    S.IN_PROGRESS: _execute,
    S.FINALIZING: _complete,
    S.CANCELLING: _cancel,
}
