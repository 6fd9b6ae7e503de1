"""When a running batch should end, from its own measured rate."""

from __future__ import annotations

import math

from batchgate.domain.status import BatchStatus


def estimated_completion_at(
    status: BatchStatus, total: int, done: int, in_progress_at: int | None, now: int
) -> int | None:
    """Unix seconds at which the batch's last line should be answered, at the rate it has kept so far.

    Only an in_progress batch has one, once it has answered a line and run for a whole second: before
    that there is no rate to measure, and after it the batch is no longer working through lines
    (finalizing takes moments; a cancel or an expiry ends it otherwise). The estimate is not capped at
    `expires_at`: one beyond it says the window will end first.
    """
    if status is not BatchStatus.IN_PROGRESS or in_progress_at is None or total <= 0 or done <= 0:
        return None
    elapsed = now - in_progress_at
    if elapsed <= 0:
        return None
    remaining = max(0, total - done)
    return now + math.ceil(remaining * elapsed / done)
