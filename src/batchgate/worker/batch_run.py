"""Driving one batch through the steps that one worker takes alone, under the batch lease.

Validating, finalizing, cancelling and expiring happen once per batch (a registry of steps,
below); the in_progress lines are sent shard by shard by every worker (shard_run.py). A
step does its work and moves the status with a compare-and-set, then the loop reads the
batch again. A crash anywhere leaves a status from which the same step resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from batchgate.domain.records import BatchRecord
from batchgate.domain.shards import ShardCutter
from batchgate.domain.status import BatchStatus
from batchgate.errors import InputMissing, LeaseLost
from batchgate.upstream.base import NO_CACHE
from batchgate.worker.context import WorkerContext
from batchgate.worker.dispatch_plan import plan_dispatch
from batchgate.worker.finalize import fail_without_input, finalize
from batchgate.worker.heartbeat import EXPIRABLE, credit, heartbeat, interval
from batchgate.worker.stop import StopReason, StopSignal
from batchgate.worker.validate import validate_input

log = logging.getLogger("batchgate.worker")
S = BatchStatus


class BatchRun:
    def __init__(self, ctx: WorkerContext, batch_id: str):
        self.ctx = ctx
        self.batch_id = batch_id
        self.stop = StopSignal()

    async def run(self) -> None:
        ctx = self.ctx
        claimed_at = ctx.clock()
        if not await ctx.store.claim(self.batch_id, ctx.worker_id, claimed_at, ctx.leases.lease_seconds):
            return
        credit(ctx, self.stop, claimed_at)
        beat = None
        try:
            batch = await ctx.store.get_batch(self.batch_id)
            assert batch is not None  # claimed just now: the batch exists
            renew = partial(ctx.store.renew, self.batch_id, ctx.worker_id, lease_seconds=ctx.leases.lease_seconds)
            beat = asyncio.create_task(heartbeat(ctx, f"batch {self.batch_id}", renew, self.stop, batch.expires_at))
            while (batch := await ctx.store.get_batch(self.batch_id)) and (
                self._expired(batch) or batch.status in STEPS
            ):
                step = _expire if self._expired(batch) else STEPS[batch.status]
                try:
                    await step(self, batch)
                except InputMissing as missing:
                    log.error("batch %s ends failed with the results it has: %s", batch.id, missing.message)
                    await ctx.store.seal(batch.id)
                    sealed = await ctx.store.get_batch(batch.id)
                    assert sealed is not None  # held under the lease: nobody deletes it meanwhile
                    await fail_without_input(ctx, sealed, missing)
                if self.stop.reason is StopReason.LEASE_LOST:
                    return
        except LeaseLost:
            log.warning("batch %s: lease lost; another worker carries on", self.batch_id)
        finally:
            if beat is not None:
                beat.cancel()
            await ctx.store.release(self.batch_id, ctx.worker_id)

    def _expired(self, batch: BatchRecord) -> bool:
        return batch.status in EXPIRABLE and self.ctx.clock() >= batch.expires_at

    async def settle_shards(self) -> None:
        """Wait until no worker is sending lines of this batch any more (each stops within the cancel grace)."""
        while await self.ctx.store.live_shards(self.batch_id, self.ctx.clock()):
            if self.stop.reason is StopReason.LEASE_LOST:
                raise LeaseLost(f"worker {self.ctx.worker_id} no longer holds batch {self.batch_id}")
            await asyncio.sleep(interval(self.ctx))


async def _validate(run: BatchRun, batch: BatchRecord) -> None:
    settings = run.ctx.validation

    def new_cutter() -> ShardCutter:
        return ShardCutter(settings.shard_lines, min(batch.max_concurrency, settings.max_shards_per_batch))

    cutter = new_cutter()
    report = await validate_input(run.ctx, batch, cutter)
    if report.ok:
        changes: dict = {"total": report.request_count, "model": report.model}
        spans = cutter.spans()
        cache = run.ctx.router.prefix_cache(batch.endpoint, report.model) if settings.cache_aware else NO_CACHE
        if cache != NO_CACHE:
            # Behind caches per slot groups take turns in file order: no dispatch copy (execute.py).
            plan = await plan_dispatch(run.ctx, batch, new_cutter, copy=cache.shared)
            changes["grouped"] = int(plan.grouped)
            if plan.key is not None and plan.spans is not None:
                changes["dispatch_key"], spans = plan.key, plan.spans
        moved = await run.ctx.store.transition(
            batch.id, S.VALIDATING, S.IN_PROGRESS, run.ctx.now(), changes, shards=spans
        )
        if not moved and "dispatch_key" in changes:  # cancelled meanwhile: the copy will never be read
            await run.ctx.blobs.delete(changes["dispatch_key"])
    else:
        await run.ctx.store.transition(batch.id, S.VALIDATING, S.FAILED, run.ctx.now(), {"errors": report.to_wire()})


async def _complete(run: BatchRun, batch: BatchRecord) -> None:
    await finalize(run.ctx, batch, S.COMPLETED)


async def _cancel(run: BatchRun, batch: BatchRecord) -> None:
    await run.settle_shards()  # in-flight lines may finish within the grace period
    await _end(run, batch, S.CANCELLED)


async def _expire(run: BatchRun, batch: BatchRecord) -> None:
    await _end(run, batch, S.EXPIRED)  # in-flight lines are abandoned: the seal refuses their results


async def _end(run: BatchRun, batch: BatchRecord, target: BatchStatus) -> None:
    """Cancel or expire: answered lines keep their results; every other line gets the batch's reason."""
    await run.ctx.store.seal(batch.id)
    sealed = await run.ctx.store.get_batch(batch.id)  # the counts are final once sealed
    assert sealed is not None  # held under the lease: nobody deletes it meanwhile
    batch = sealed
    if batch.in_progress_at is None:
        # Never validated to the end: count its lines first, or record why the file is unusable.
        report = await validate_input(run.ctx, batch)
        if not report.ok:
            await run.ctx.store.transition(batch.id, batch.status, target, run.ctx.now(), {"errors": report.to_wire()})
            return
        batch = dataclasses.replace(batch, total=report.request_count)
    await finalize(run.ctx, batch, target)


Step = Callable[[BatchRun, BatchRecord], Awaitable[None]]
STEPS: dict[BatchStatus, Step] = {
    S.VALIDATING: _validate,
    S.FINALIZING: _complete,
    S.CANCELLING: _cancel,
}
