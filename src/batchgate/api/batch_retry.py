"""POST /batches/{id}/retry: a new batch of exactly the lines an ended batch put in its error file.

The new batch reads their original request lines (same custom_ids, taken from the old batch's
input file, in input order) from a new input file in the caller's scope, and has the old batch's
endpoint, completion window and max_concurrency; its metadata is the old batch's with `retry_of`
naming the old batch (see domain/result_merge.py:retry_metadata for when the pairs do not fit).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from aiohttp import web

from batchgate import ids
from batchgate.api.batch_lines import failed_requests
from batchgate.api.batches import owned_batch
from batchgate.api.middleware import not_found
from batchgate.api.services import Services, services
from batchgate.api.wire import json_response, scope_of
from batchgate.blobs import CHUNK
from batchgate.domain.records import BatchRecord, FileRecord
from batchgate.domain.requests import INPUT_PURPOSE, MAX_METADATA_PAIRS
from batchgate.domain.result_merge import retry_metadata
from batchgate.domain.status import TERMINAL, BatchStatus
from batchgate.domain.windows import window_seconds
from batchgate.errors import Conflict


def _nothing_to_retry(batch: BatchRecord) -> Conflict:
    return Conflict(f"Batch {batch.id} has no failed lines to retry.", param="batch_id", code="nothing_to_retry")


async def retry(request: web.Request) -> web.Response:
    svc, scope = services(request), scope_of(request)
    old = await owned_batch(request)
    if old.status not in TERMINAL:
        raise Conflict(
            f"Batch {old.id} is still '{old.status.value}'; only a batch that has ended can be retried.",
            param="batch_id",
            code="batch_not_finished",
        )
    if not old.error_file_id:
        raise _nothing_to_retry(old)
    if await svc.store.get_file(scope, old.error_file_id) is None:
        raise Conflict(
            f"The error file {old.error_file_id} of batch {old.id} has been deleted: it names the lines to retry.",
            param="batch_id",
            code="error_file_deleted",
        )
    file = await _write_input(svc, old)
    if file is None:
        raise _nothing_to_retry(old)
    try:
        await svc.store.insert_file(file)
    except BaseException:
        await svc.blobs.delete(file.storage_key)
        raise
    now = svc.now()
    batch = BatchRecord(
        id=ids.batch_id(),
        scope=scope,
        endpoint=old.endpoint,
        input_file_id=file.id,
        completion_window=old.completion_window,
        status=BatchStatus.VALIDATING,
        created_at=now,
        expires_at=now + window_seconds(old.completion_window, svc.settings.completion_window_seconds),
        max_concurrency=min(old.max_concurrency, svc.settings.max_concurrency_ceiling),
        metadata=retry_metadata(old.metadata, old.id, MAX_METADATA_PAIRS),
        output_expires_seconds=old.output_expires_seconds,
    )
    if not await svc.store.insert_batch(batch):
        raise not_found("file", file.id, "input_file_id")  # deleted by its owner in this very moment
    svc.wake_worker()
    return json_response(batch.to_wire(now))


async def _write_input(svc: Services, old: BatchRecord) -> FileRecord | None:
    """The new input file's blob and record (not inserted yet); None, with no blob, if no line matched."""
    key, digest, count = ids.file_id(), hashlib.sha256(), 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal count
        buffer = bytearray()
        async for raw in failed_requests(svc, old):
            buffer += raw + b"\n"
            count += 1
            if len(buffer) >= CHUNK:
                digest.update(buffer)
                yield bytes(buffer)
                buffer.clear()
        digest.update(buffer)
        yield bytes(buffer)

    size = await svc.blobs.write(key, chunks())
    if count == 0:
        await svc.blobs.delete(key)
        return None
    now = svc.now()
    return FileRecord(
        key,
        old.scope,
        f"{old.id}_retry.jsonl",
        INPUT_PURPOSE,
        size,
        digest.hexdigest(),
        key,
        now,
        now + svc.settings.file_retention_seconds,
    )


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/batches/{{batch_id}}/retry", retry)
