"""Renewing a lease while work goes on, and turning what the renewal reports into stop reasons."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from batchgate.domain.status import BatchStatus
from batchgate.errors import LeaseLost, Unavailable
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import StopReason, StopSignal

log = logging.getLogger("batchgate.worker")
EXPIRABLE = frozenset({BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS})
Renew = Callable[[float], Awaitable[BatchStatus]]  # renew(now) → the batch's status, or LeaseLost


def interval(ctx: WorkerContext) -> float:
    return min(ctx.settings.poll_interval_seconds, ctx.settings.lease_seconds / 3)


def safe_lease(ctx: WorkerContext) -> float:
    # Stop dispatching one heartbeat before the lease could lapse.
    return ctx.settings.lease_seconds - interval(ctx)


async def heartbeat(ctx: WorkerContext, what: str, renew: Renew, stop: StopSignal, expires_at: int) -> None:
    """Renew every `interval` until cancelled; a cancel or the end of the window stops the work."""
    while True:
        await asyncio.sleep(interval(ctx))
        renewing_at = ctx.clock()
        try:
            status = await renew(renewing_at)
        except LeaseLost:
            stop.stop(StopReason.LEASE_LOST)
            return
        except Exception as exc:
            log_failure(f"{what}: heartbeat failed; retrying", exc)
            continue
        stop.renewed(renewing_at + safe_lease(ctx))
        if status is BatchStatus.CANCELLING:
            stop.stop(StopReason.CANCELLED)
        elif status in EXPIRABLE and ctx.clock() >= expires_at:
            stop.stop(StopReason.EXPIRED)


def log_failure(message: str, exc: Exception) -> None:
    """An unreachable database is an expected, passing condition: one line; anything else: the traceback."""
    if isinstance(exc, Unavailable):
        log.warning("%s (%s)", message, exc.message)
    else:
        log.error(message, exc_info=exc)
