"""The fields DESIGN.md §2 gives the batch object: every answer that carries a batch must have them."""

from __future__ import annotations

BATCH_FIELDS = (
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
    "max_concurrency",
    "estimated_completion_at",
)
