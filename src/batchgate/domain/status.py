"""Batch statuses and the transitions between them.

validating ─► in_progress ─► finalizing ─► completed
    │              │
    ├─► failed     ├─► cancelling ─► cancelled
    └─► cancelling └─► expired   (validating may expire too)

Any running status goes to failed if the input file is lost from storage.
"""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


S = BatchStatus

TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    S.VALIDATING: frozenset({S.IN_PROGRESS, S.FAILED, S.CANCELLING, S.EXPIRED}),
    # Running batches fail only when their input file is lost from storage.
    S.IN_PROGRESS: frozenset({S.FINALIZING, S.CANCELLING, S.EXPIRED, S.FAILED}),
    S.FINALIZING: frozenset({S.COMPLETED, S.FAILED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)
ACTIVE = frozenset(BatchStatus) - TERMINAL
CANCELLABLE = frozenset({S.VALIDATING, S.IN_PROGRESS})
# Ends whose files hold every line: the per-line result rows are dropped as the batch reaches them.
# A batch that fails keeps its rows (its files may lack the lines it could not read).
RESULTS_IN_FILES = frozenset({S.COMPLETED, S.CANCELLED, S.EXPIRED})


def can_move(current: BatchStatus, target: BatchStatus) -> bool:
    return target in TRANSITIONS[current]


def timestamp_field(status: BatchStatus) -> str | None:
    """The batch field stamped when a batch enters `status` (validating has created_at)."""
    return None if status is S.VALIDATING else f"{status.value}_at"


def unfinished_line_code(status: BatchStatus) -> str | None:
    """Error code given to lines that never got an answer when a batch ends in `status`."""
    return {S.CANCELLED: "batch_cancelled", S.EXPIRED: "batch_expired"}.get(status)
