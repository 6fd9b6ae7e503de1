"""The worker loop: find unfinished batches, run each under a lease, sweep expired files."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from batchgate.blobs.local import remove_stale
from batchgate.errors import Conflict
from batchgate.worker.batch_run import BatchRun
from batchgate.worker.context import WorkerContext
from batchgate.worker.ledger import scratch_folder

log = logging.getLogger("batchgate.worker")
SWEEP_PAGE = 500
MAX_RETRY_DELAY = 60.0


class Worker:
    def __init__(self, ctx: WorkerContext):
        self.ctx = ctx
        self._runs: dict[str, asyncio.Task] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # batch id → (failures in a row, retry not before)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now rather than at the next poll (a batch was created or cancelled)."""
        self._wake.set()

    async def run(self) -> None:
        sweeper = asyncio.create_task(self._sweep_forever())
        try:
            while True:
                self._wake.clear()
                await self._start_new_runs()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.ctx.settings.poll_interval_seconds)
        finally:
            sweeper.cancel()
            tasks = [sweeper, *self._runs.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_new_runs(self) -> None:
        try:
            batch_ids = await self.ctx.store.active_batch_ids()
        except Exception:
            log.exception("could not list unfinished batches; retrying")
            return
        now = self.ctx.clock()
        for batch_id in batch_ids:
            if batch_id not in self._runs and self._failures.get(batch_id, (0, 0.0))[1] <= now:
                self._runs[batch_id] = asyncio.create_task(self._run(batch_id), name=f"batch-{batch_id}")

    async def _run(self, batch_id: str) -> None:
        try:
            await BatchRun(self.ctx, batch_id).run()
            self._failures.pop(batch_id, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Resume later, backing off so a persistent fault (a broken disk, say) does not spin.
            count = self._failures.get(batch_id, (0, 0.0))[0] + 1
            delay = min(MAX_RETRY_DELAY, self.ctx.settings.poll_interval_seconds * 2 ** count)
            self._failures[batch_id] = (count, self.ctx.clock() + delay)
            log.exception("batch %s: run failed (%d in a row); resuming in %.1fs", batch_id, count, delay)
        finally:
            self._runs.pop(batch_id, None)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_expired_files()
                await self.sweep_stale_scratch()
            except Exception:
                log.exception("file retention sweep failed; retrying later")
            await asyncio.sleep(self.ctx.settings.retention_interval_seconds)

    async def sweep_stale_scratch(self) -> int:
        """Remove scratch files that a crashed process left behind (half-written blobs, duplicate ledgers)."""
        age = self.ctx.settings.stale_temp_seconds
        ledgers = await asyncio.to_thread(remove_stale, scratch_folder(self.ctx.settings), "ids-*.db", age)
        return ledgers + await self.ctx.blobs.sweep_partial(age)

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
