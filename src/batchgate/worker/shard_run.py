"""Working on one shard of an in_progress batch under its lease.

Any number of workers run shards of one batch at once. The worker that finishes the last
shard moves the batch to finalizing (a compare-and-set), and a batch-lease holder writes
the files once.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from batchgate.domain.status import BatchStatus
from batchgate.errors import InputMissing, LeaseLost
from batchgate.logs import log_context
from batchgate.store import ShardLease
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import UNHEARD, ShardEnding, execute
from batchgate.worker.finalize import fail_without_input
from batchgate.worker.heartbeat import credit, heartbeat
from batchgate.worker.lane import Lane
from batchgate.worker.stop import StopSignal

log = logging.getLogger("batchgate.worker")


async def run_shard(
    ctx: WorkerContext,
    lease: ShardLease,
    claimed_at: float,
    lane: Lane,
    ending: ShardEnding = UNHEARD,
) -> bool:
    """Send the shard's unanswered lines through `lane`; True if this finished the batch's last shard."""
    batch = await ctx.store.get_batch(lease.batch_id)
    if batch is None or batch.status is not BatchStatus.IN_PROGRESS:
        await ctx.store.release_shard(lease)
        return False
    stop = StopSignal()
    credit(ctx, stop, claimed_at)
    renew = partial(ctx.store.renew_shard, lease, lease_seconds=ctx.leases.lease_seconds)
    beat = asyncio.create_task(heartbeat(ctx, f"batch {batch.id} shard {lease.shard}", renew, stop, batch.expires_at))
    try:
        with log_context(batch_id=batch.id, shard=lease.shard):
            await execute(ctx, batch, stop, lease, lane, ending)
        if stop.reason is None:
            return await ctx.store.finish_shard(lease, ctx.now())
    except InputMissing as missing:
        # Nothing more can be read: keep what was recorded, once, whoever gets here first.
        log.error("batch %s ends failed with the results it has: %s", batch.id, missing.message)
        await ctx.store.seal(batch.id)
        sealed = await ctx.store.get_batch(batch.id)
        if sealed is not None and sealed.status is BatchStatus.IN_PROGRESS:
            await fail_without_input(ctx, sealed, missing)
    except LeaseLost:
        log.warning("batch %s shard %d: lease lost; another worker carries on", batch.id, lease.shard)
    finally:
        beat.cancel()
        await ctx.store.release_shard(lease)
    return False
