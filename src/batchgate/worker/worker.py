"""The worker loop: drive batches that need one worker, run shards of running batches, sweep expired files.

A worker runs up to `worker_shards` shards at once, claimed one by one from the least
recently served batch, so many small batches share the workers fairly and one big batch
is spread over all of them. A shard with a window of lines left to send hands its lane (its window)
on to the next shard of its batch, which gets ready beside it and takes each slot as it frees up,
so the batch's concurrency stays in use across shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter

from batchgate.blobs.local import remove_stale
from batchgate.domain.retry import Backoffs
from batchgate.errors import Conflict
from batchgate.store import ShardLease
from batchgate.webhooks.courier import Courier
from batchgate.worker.batch_run import BatchRun
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import ShardEnding
from batchgate.worker.heartbeat import interval, log_failure, session_grace
from batchgate.worker.identity import new_worker_id
from batchgate.worker.lane import Lane
from batchgate.worker.shard_run import run_shard
from batchgate.worker.takeover import Takeover

log = logging.getLogger("batchgate.worker")
SWEEP_PAGE = 500
MAX_RETRY_DELAY = 60.0


class Worker:
    def __init__(self, ctx: WorkerContext):
        self.ctx = ctx
        self._runs: dict[str, asyncio.Task] = {}
        self._run_failures = Backoffs(ctx.leases.poll_interval_seconds, MAX_RETRY_DELAY)  # batch runs
        self._shards: set[asyncio.Task] = set()
        self._shard_failures = Backoffs(ctx.leases.poll_interval_seconds, MAX_RETRY_DELAY)  # their shards' runs
        # Batch id → its lanes that have a shard still sending lines, with how many (one, or two while the
        # next shard gets ready in the lane beside the one sending its last window).
        self._sending: dict[str, Counter[Lane]] = {}
        self._wake = asyncio.Event()
        # Seen ended for longer than an owner's proof lasts, plus one heartbeat for it to notice.
        self._takeover = Takeover(ctx.store, session_grace(ctx) + interval(ctx))
        # Webhooks go out beside the batch work, never in its way: a task of their own, their own connections.
        self._webhooks = Courier(ctx.courier, ctx.store, ctx.clock, lambda: self.ctx.worker_id)

    def wake(self) -> None:
        """Look for work now rather than at the next poll (a batch was created or cancelled)."""
        self._wake.set()

    async def run(self) -> None:
        await self._hold_session(self.ctx.worker_id)
        sweeper = asyncio.create_task(self._sweep_forever())
        prover = asyncio.create_task(self._prove_session_forever())
        webhooks = asyncio.create_task(self._webhooks.run(), name="webhooks")
        try:
            while True:
                self._wake.clear()
                await self._take_over_dead()
                await self._start_new_runs()
                await self._start_shards()
                await self._idle()
        finally:
            tasks = [sweeper, prover, webhooks, *self._runs.values(), *self._shards]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _idle(self) -> None:
        """Wait for a wake, or one poll interval.

        asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives in the
        same turn as the wake, and the worker would then never stop.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.ctx.leases.poll_interval_seconds):
                await self._wake.wait()

    async def _prove_session_forever(self) -> None:
        """Prove our session (PostgreSQL) every heartbeat; once it is lost, go on under a new worker id.

        The runs begun under the lost id stop at their next heartbeat (their session is gone, and
        another worker may take their leases); new claims are made under the new id.
        """
        while True:
            await asyncio.sleep(interval(self.ctx))
            try:
                if not await self.ctx.store.prove_session(self.ctx.worker_id, self.ctx.clock()):
                    log.warning("worker %s: its database session ended; its leases are given up", self.ctx.worker_id)
                    await self._hold_session(new_worker_id())
            except Exception as exc:
                log_failure("could not prove the worker's database session; retrying", exc)

    async def _hold_session(self, worker_id: str) -> None:
        self.ctx = dataclasses.replace(self.ctx, worker_id=worker_id)
        try:
            await self.ctx.store.hold_session(worker_id, self.ctx.clock())
        except Exception as exc:
            log_failure(f"worker {worker_id}: could not open its database session; retrying", exc)

    async def _take_over_dead(self) -> None:
        """Before claiming: the leases of workers that died (a kill -9, a crash) are free at once."""
        try:
            await self._takeover.check(self.ctx.worker_id, self.ctx.clock())
        except Exception as exc:
            log_failure("could not look for dead workers' leases; retrying", exc)

    async def _start_new_runs(self) -> None:
        try:
            now = self.ctx.clock()
            batch_ids = await self.ctx.store.batches_to_drive(now)
        except Exception as exc:
            log_failure("could not list unfinished batches; retrying", exc)
            return
        for batch_id in batch_ids:
            if batch_id not in self._runs and not self._run_failures.resting(batch_id, now):
                self._runs[batch_id] = asyncio.create_task(self._run(batch_id), name=f"batch-{batch_id}")

    async def _run(self, batch_id: str) -> None:
        try:
            await BatchRun(self.ctx, batch_id).run()
            self._run_failures.succeeded(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            count, delay = self._run_failures.failed(batch_id, self.ctx.clock())  # resumed after a rest
            log_failure(f"batch {batch_id}: run failed ({count} in a row); resuming in {delay:.1f}s", exc)
        finally:
            self._runs.pop(batch_id, None)
            self.wake()  # a validated batch has shards to claim now

    async def _start_shards(self) -> None:
        loop = self.ctx.worker_loop
        while len(self._shards) < loop.worker_shards:
            claimed_at = self.ctx.clock()
            resting = self._shard_failures.all_resting(claimed_at)
            try:
                leases = await self.ctx.store.claim_shards(
                    self.ctx.worker_id,
                    claimed_at,
                    self.ctx.leases.lease_seconds,
                    loop.max_shards_per_batch,
                    loop.worker_shards - len(self._shards),
                    resting,
                )
            except Exception as exc:
                log_failure("could not claim a shard; retrying", exc)
                return
            if not leases:
                return
            for lease in leases:
                task = asyncio.create_task(
                    self._run_shard(lease, claimed_at, Lane(lease.window)), name=f"shard-{lease.batch_id}-{lease.shard}"
                )
                self._shards.add(task)

    def _hand_on(self, lease: ShardLease, lane: Lane, sent_all: asyncio.Event) -> None:
        """`lease`'s shard has a window of lines left to send: let the next shard of its batch get ready to
        take the lane's slots as they free up, so none waits for its claim, its first read or its start.

        Only while this worker runs fewer than `worker_shards` shards, so handing on never keeps other
        batches from its slots, and not while the batch rests after failed shard runs.
        """
        resting = self._shard_failures.resting(lease.batch_id, self.ctx.clock())
        if len(self._shards) < self.ctx.worker_loop.worker_shards and not resting:
            successor = self._run_successor(lease, lane, sent_all)
            self._shards.add(asyncio.create_task(successor, name=f"successor-{lease.batch_id}"))

    async def _run_successor(self, lease: ShardLease, lane: Lane, sent_all: asyncio.Event) -> None:
        claimed_at = self.ctx.clock()
        try:
            successor = await self.ctx.store.claim_successor(
                lease, claimed_at, self.ctx.leases.lease_seconds, self.ctx.worker_loop.max_shards_per_batch
            )
        except Exception as exc:
            log_failure(f"batch {lease.batch_id}: could not claim the shard after {lease.shard}", exc)
            successor = None
        if successor is None:
            # No shard left to hand on to: once this one has sent all, the slots go to a lane of the batch
            # that still sends lines.
            await sent_all.wait()
            heir = next(iter(self._sending.get(lease.batch_id, ())), None)
            if heir is not None and heir is not lane:
                lane.retire(heir)
            self._shards.discard(asyncio.current_task())
            return
        await self._run_shard(successor, claimed_at, lane)

    async def _run_shard(self, lease: ShardLease, claimed_at: float, lane: Lane) -> None:
        sending = self._sending.setdefault(lease.batch_id, Counter())
        sending[lane] += 1
        all_sent = asyncio.Event()  # set however the run ends: a successor that found none waits for it

        def nearly_sent() -> None:
            self._hand_on(lease, lane, all_sent)

        def sent_all() -> None:
            if not all_sent.is_set():
                all_sent.set()
                sending[lane] -= 1
                if not sending[lane]:
                    del sending[lane]

        try:
            if await run_shard(self.ctx, lease, claimed_at, lane, ShardEnding(nearly_sent, sent_all)):
                log.info("batch %s: last shard done; finalizing", lease.batch_id)
            self._shard_failures.succeeded(lease.batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The shard is released and claimed again after a rest; only this batch rests, the others go on.
            count, delay = self._shard_failures.failed(lease.batch_id, self.ctx.clock())
            log_failure(
                f"batch {lease.batch_id} shard {lease.shard}: run failed ({count} in a row); "
                f"claiming again in {delay:.1f}s",
                exc,
            )
        finally:
            sent_all()
            if not sending and self._sending.get(lease.batch_id) is sending:
                del self._sending[lease.batch_id]
            self._shards.discard(asyncio.current_task())
            self.wake()  # a slot is free, and the batch may await finalizing

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_expired_files()
                await self.sweep_stale_scratch()
                await self.sweep_dispatch_copies()
            except Exception as exc:
                log_failure("file retention sweep failed; retrying later", exc)
            await asyncio.sleep(self.ctx.worker_loop.retention_interval_seconds)

    async def sweep_stale_scratch(self) -> int:
        """Remove scratch files that a crashed process left behind (half-written blobs, duplicate ledgers)."""
        loop = self.ctx.worker_loop
        age = loop.stale_temp_seconds
        ledgers = await asyncio.to_thread(remove_stale, loop.scratch_folder, "ids-*.db", age)
        return ledgers + await self.ctx.blobs.sweep_partial(age)

    async def sweep_dispatch_copies(self) -> int:
        """Delete the dispatch copies of ended batches (a crash between a batch's end and the copy's delete)."""
        swept = 0
        while copies := await self.ctx.store.ended_dispatch_copies(SWEEP_PAGE):
            for batch_id, key in copies:
                await self.ctx.blobs.delete(key)
                await self.ctx.store.forget_dispatch_copy(batch_id)
            swept += len(copies)
            if len(copies) < SWEEP_PAGE:
                break
        return swept

    async def sweep_expired_files(self) -> int:
        """Delete files past their expires_at (unless an unfinished batch uses them). Returns how many."""
        deleted = 0
        while files := await self.ctx.store.expired_files(self.ctx.now(), SWEEP_PAGE):
            for file in files:
                try:
                    gone = await self.ctx.store.delete_file(file.id)
                except Conflict:
                    continue  # a batch started using it since we looked; it lives until that batch ends
                if gone is not None:
                    await self.ctx.blobs.delete(file.storage_key)
                    deleted += 1
            if len(files) < SWEEP_PAGE:
                break
        return deleted
