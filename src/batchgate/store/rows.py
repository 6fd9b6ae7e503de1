"""Table rows and the records they hold, mapped by column name.

Each record type has one tuple of column names. The catalogue (queries.py) builds its SELECT
and INSERT lists from it, the `*_of(row)` function here zips a row with those names into the
record, and the `*_params(record)` function gives the record's values by the same names. A
column whose name is a field of the record needs nothing more than its place in the tuple and
the field; only the columns that are not plain fields (the scope, JSON texts, usage, limits)
are handled by name below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from batchgate.domain.file_check import FileSummary, LineLimits
from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import BatchStatus
from batchgate.domain.webhooks import WebhookEndpoint
from batchgate.store.base import KeyRecord, ResultRow, ShardLease

SCOPE_COLUMNS = ("owner", "on_behalf_of")
KEY_COLUMNS = ("id", "name", "owner", "prefix", "created_at", "revoked_at")
FILE_COLUMNS = (
    "id",
    "owner",
    "on_behalf_of",
    "filename",
    "purpose",
    "bytes",
    "sha256",
    "storage_key",
    "created_at",
    "expires_at",
)
USAGE_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
# The columns a batch is created with; the others start at their defaults and change as it runs.
NEW_BATCH_COLUMNS = (
    "id",
    "owner",
    "on_behalf_of",
    "endpoint",
    "input_file_id",
    "completion_window",
    "status",
    "created_at",
    "expires_at",
    "max_concurrency",
    "metadata",
    "output_expires_seconds",
)
BATCH_COLUMNS = (
    *NEW_BATCH_COLUMNS,
    "output_file_id",
    "error_file_id",
    "errors",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "total",
    "completed",
    "failed",
    *USAGE_COLUMNS,
    "model",
    "duplicates_saved",
    "dispatch_key",
    "grouped",
)
LIMIT_COLUMNS = ("max_lines", "max_line_bytes", "shard_lines")
SUMMARY_COLUMNS = ("file_id", "endpoint", "requests", "last_line", "model", "grains", *LIMIT_COLUMNS)
SPAN_COLUMNS = ("shard", "first_line", "last_line", "start_offset")  # where a shard's lines are
SHARD_COLUMNS = ("batch_id", *SPAN_COLUMNS)
RESULT_COLUMNS = ("batch_id", "line", "ok", "record")
RESULT_ROW_COLUMNS = ("line", "ok", "record")  # ResultRow's fields, in order
# Columns a status transition may set besides the status and its timestamp.
WEBHOOK_COLUMNS = ("id", "owner", "on_behalf_of", "url", "events", "secret", "created_at")
TRANSITION_COLUMNS = frozenset(
    {"total", "failed", "errors", "output_file_id", "error_file_id", "model", "dispatch_key", "grouped"}
)


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _unjson(text: str | None) -> Any:
    return orjson.loads(text) if text else None


def key_of(row: Sequence) -> KeyRecord:
    return KeyRecord(**dict(zip(KEY_COLUMNS, row, strict=True)))


def key_params(key: KeyRecord, secret_hash: str) -> dict[str, Any]:
    return {**{column: getattr(key, column) for column in KEY_COLUMNS}, "secret_hash": secret_hash}


def file_of(row: Sequence) -> FileRecord:
    fields = dict(zip(FILE_COLUMNS, row, strict=True))
    return FileRecord(scope=Scope(fields.pop("owner"), fields.pop("on_behalf_of")), **fields)


def file_params(file: FileRecord) -> dict[str, Any]:
    params = {column: getattr(file, column) for column in FILE_COLUMNS if column not in SCOPE_COLUMNS}
    params.update(owner=file.scope.owner, on_behalf_of=file.scope.on_behalf_of)
    return params


def batch_of(row: Sequence) -> BatchRecord:
    fields = dict(zip(BATCH_COLUMNS, row, strict=True))
    scope = Scope(fields.pop("owner"), fields.pop("on_behalf_of"))
    usage = Usage(**{column: fields.pop(column) for column in USAGE_COLUMNS})
    fields.update(
        status=BatchStatus(fields["status"]),
        metadata=_unjson(fields["metadata"]),
        errors=_unjson(fields["errors"]),
        grouped=bool(fields["grouped"]),
    )
    return BatchRecord(scope=scope, usage=usage, **fields)


def new_batch_params(batch: BatchRecord) -> dict[str, Any]:
    params = {column: getattr(batch, column) for column in NEW_BATCH_COLUMNS if column not in SCOPE_COLUMNS}
    params.update(
        owner=batch.scope.owner,
        on_behalf_of=batch.scope.on_behalf_of,
        status=batch.status.value,
        metadata=_json(batch.metadata),
    )
    return params


def transition_params(changes: dict[str, Any]) -> dict[str, Any]:
    """The values of a transition's `changes`, as stored; ValueError for a column it may not set."""
    if set(changes) - TRANSITION_COLUMNS:
        raise ValueError(f"transition cannot set {set(changes) - TRANSITION_COLUMNS}")
    params = dict(changes)
    if "errors" in params:
        params["errors"] = _json(params["errors"])
    return params


def summary_of(row: Sequence) -> FileSummary:
    fields = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    del fields["file_id"]
    limits = LineLimits(**{column: fields.pop(column) for column in LIMIT_COLUMNS})
    fields["grains"] = bytes(fields["grains"])
    return FileSummary(limits=limits, **fields)


def summary_params(file_id: str, summary: FileSummary) -> dict[str, Any]:
    params = {
        column: getattr(summary, column)
        for column in SUMMARY_COLUMNS
        if column not in LIMIT_COLUMNS and column != "file_id"
    }
    params.update({column: getattr(summary.limits, column) for column in LIMIT_COLUMNS}, file_id=file_id)
    return params


def shard_params(batch_id: str, shard: int, span: ShardSpan) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "shard": shard,
        "first_line": span.first_line,
        "last_line": span.last_line,
        "start_offset": span.offset,
    }


def shard_lease_of(row: Sequence, batch_id: str, worker_id: str, window: int) -> ShardLease:
    """`worker_id`'s lease on the shard of a SPAN_COLUMNS row, with its share `window` of the batch's concurrency."""
    span = dict(zip(SPAN_COLUMNS, row, strict=True))
    return ShardLease(
        batch_id, span["shard"], worker_id, span["first_line"], span["last_line"], span["start_offset"], window
    )


def result_of(row: Sequence) -> ResultRow:
    """A RESULT_ROW_COLUMNS row. Unpacked rather than zipped, as the columns are the record's fields in
    order: output files are written from these, one per line of a batch."""
    line, ok, record = row
    return ResultRow(line, bool(ok), bytes(record))


def result_params(batch_id: str, rows: list[ResultRow]) -> list[dict[str, Any]]:
    """The rows of one result commit, for executemany."""
    return [{"batch_id": batch_id, "line": r.line, "ok": int(r.ok), "record": r.record} for r in rows]


def webhook_of(row: Sequence) -> WebhookEndpoint:
    values = dict(zip(WEBHOOK_COLUMNS, row, strict=True))
    return WebhookEndpoint(
        id=values["id"],
        scope=Scope(values["owner"], values["on_behalf_of"]),
        url=values["url"],
        events=tuple(values["events"].split(",")),
        secret=values["secret"],
        created_at=values["created_at"],
    )


def webhook_params(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "owner": endpoint.scope.owner,
        "on_behalf_of": endpoint.scope.on_behalf_of,
        "url": endpoint.url,
        "events": ",".join(endpoint.events),
        "secret": endpoint.secret,
        "created_at": endpoint.created_at,
    }
