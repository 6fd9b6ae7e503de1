"""Why a run must stop, and the one event that wakes it: shared by the heartbeat, the runs and execution."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum


class StopReason(Enum):
    CANCELLED = "cancelled"  # let in-flight lines finish within a grace period
    EXPIRED = "expired"  # the completion window is over: abandon in-flight lines now
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
