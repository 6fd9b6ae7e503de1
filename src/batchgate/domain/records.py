"""What the store keeps about files and batches, and how each looks on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchgate.domain.eta import estimated_completion_at
from batchgate.domain.status import BatchStatus


@dataclass(frozen=True)
class Scope:
    """Who is asking: the key's owner and the X-On-Behalf-Of value ('' when absent)."""

    owner: str
    on_behalf_of: str = ""

    @property
    def tenant(self) -> str:
        """Whose fair share a request counts against at a busy upstream."""
        return f"{self.owner}/{self.on_behalf_of}"


@dataclass(frozen=True)
class FileRecord:
    id: str
    scope: Scope
    filename: str
    purpose: str
    bytes: int
    sha256: str
    storage_key: str
    created_at: int
    expires_at: int | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "expires_at": self.expires_at,
            "status": "processed",
            "status_details": None,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        # Field by field: it runs for every answered line, and a loop over tuples cost as much as the answer's parse.
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def astuple(self) -> tuple[int, ...]:
        return (self.input_tokens, self.output_tokens, self.total_tokens, self.cached_tokens, self.reasoning_tokens)

    def to_wire(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class BatchRecord:
    id: str
    scope: Scope
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    expires_at: int
    max_concurrency: int
    metadata: dict[str, str] | None = None
    output_expires_seconds: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict[str, Any] | None = None
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    model: str | None = None  # the one model all lines name, once validated
    duplicates_saved: int = 0  # lines answered by a repeat's answer, not sent (domain/duplicates.py)
    dispatch_key: str | None = None  # the blob of its lines in dispatch order, when planned by prefix group
    grouped: bool = False  # some prefix group has two lines or more: each group's first line goes ahead

    def to_wire(self, now: int | None = None) -> dict[str, Any]:
        """The batch object; `estimated_completion_at` needs the time it is answered at (`now`), else null."""
        done = self.completed + self.failed
        eta = None if now is None else estimated_completion_at(self.status, self.total, done, self.in_progress_at, now)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": self.errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status.value,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "usage": self.usage.to_wire(),
            "metadata": self.metadata,
            "max_concurrency": self.max_concurrency,
            "estimated_completion_at": eta,
            "duplicates_saved": self.duplicates_saved,
        }


def list_page(items: list[Any], has_more: bool, now: int | None = None) -> dict[str, Any]:
    """A list page of files or batches (`now` for a batch's estimate, see BatchRecord.to_wire)."""
    data = [item.to_wire() if now is None else item.to_wire(now) for item in items]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
