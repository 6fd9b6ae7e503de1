"""Renewing a lease while work goes on, and turning what the renewal reports into stop reasons."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from batchgate.domain.status import BatchStatus
from batchgate.errors import LeaseLost, Unavailable
from batchgate.worker.context import WorkerContext
from batchgate.worker.stop import StopReason, StopSignal

log = logging.getLogger("batchgate.worker")
EXPIRABLE = frozenset({BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS})
Renew = Callable[[float], Awaitable[BatchStatus]]  # renew(now) → the batch's status, or LeaseLost


def interval(ctx: WorkerContext) -> float:
    return min(ctx.leases.poll_interval_seconds, ctx.leases.lease_seconds / 3)


def safe_lease(ctx: WorkerContext) -> float:
    # Stop dispatching one heartbeat before the lease could lapse.
    return ctx.leases.lease_seconds - interval(ctx)


def session_grace(ctx: WorkerContext) -> float:
    """How long a proof of the worker's session (PostgreSQL) lets it dispatch: a few heartbeats."""
    return 3 * interval(ctx)


def lease_until(ctx: WorkerContext, renewed_at: float) -> float | None:
    """Until when a lease renewed (or claimed) at `renewed_at` lets us dispatch; None if our session is lost.

    Another worker may take our leases soon after our session ends (worker/takeover.py), so on
    PostgreSQL a renewal counts only as long as the last proof that our session lives.
    """
    proven_at = ctx.store.session_proven_at(ctx.worker_id)
    if proven_at is None:
        return None
    return min(renewed_at + safe_lease(ctx), proven_at + session_grace(ctx))


def credit(ctx: WorkerContext, stop: StopSignal, renewed_at: float) -> bool:
    """Let `stop` dispatch on a lease renewed (or claimed) at `renewed_at`; False if it must stop instead."""
    until = lease_until(ctx, renewed_at)
    if until is None:
        stop.stop(StopReason.LEASE_LOST)  # our session ended: others may already hold our leases
        return False
    stop.renewed(until)
    return True


async def heartbeat(ctx: WorkerContext, what: str, renew: Renew, stop: StopSignal, expires_at: int) -> None:
    """Renew every `interval` until cancelled; a cancel or the end of the completion window stops the work."""
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
        if not credit(ctx, stop, renewing_at):
            return
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
