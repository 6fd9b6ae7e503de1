"""Writing the output file (2xx answers) and the error file (everything else), in input order.

Lines that never got an answer (cancel, expiry) go to the error file with the batch's
reason, so the two files together hold every input line exactly once (invariant I1).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from batchgate import ids, metrics
from batchgate.blobs import CHUNK
from batchgate.domain.lines import parse_line
from batchgate.domain.records import BatchRecord, FileRecord
from batchgate.domain.results import unanswered_line
from batchgate.domain.status import BatchStatus, unfinished_line_code
from batchgate.errors import InputMissing
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import input_lines

OUTPUT_PURPOSE = "batch_output"


async def finalize(ctx: WorkerContext, batch: BatchRecord, target: BatchStatus) -> bool:
    """Write the files and move `batch` to `target` in one transaction. False if the status moved under us."""
    code = unfinished_line_code(target) or "batch_incomplete"
    unanswered = batch.total - batch.completed - batch.failed
    moved = await _commit(ctx, batch, target, _error_lines(ctx, batch, code) if batch.failed or unanswered else None)
    if moved and unanswered:
        # Lines a cancel or expiry ended without an answer finish here, with the batch's status as outcome.
        metrics.LINES_FINISHED.labels(batch.endpoint, target.value).inc(unanswered)
    return moved


async def fail_without_input(ctx: WorkerContext, batch: BatchRecord, reason: InputMissing) -> bool:
    """The input file is gone: keep every recorded result in the files and end the batch `failed`.

    Lines that never got an answer cannot be written without their custom_id; `errors` says why.
    """
    error = {"code": reason.code, "message": reason.message, "param": None, "line": None}
    return await _commit(
        ctx,
        batch,
        BatchStatus.FAILED,
        _failed_lines(ctx, batch) if batch.failed else None,
        {"errors": {"object": "list", "data": [error]}},
    )


async def _commit(
    ctx: WorkerContext,
    batch: BatchRecord,
    target: BatchStatus,
    error_lines: AsyncIterable[bytes] | None,
    extra: dict | None = None,
) -> bool:
    """Write the output file (if any line succeeded) and the error file (if `error_lines`), then move the status."""
    unanswered = batch.total - batch.completed - batch.failed
    output = errors = None
    try:
        if batch.completed:
            output = await _write(ctx, batch, "output", _output_lines(ctx, batch))
        if error_lines is not None:
            errors = await _write(ctx, batch, "errors", error_lines)
        changes = {
            "output_file_id": output and output.id,
            "error_file_id": errors and errors.id,
            "total": batch.total,
            "failed": batch.failed + unanswered,
            **(extra or {}),
        }
        moved = await ctx.store.transition(
            batch.id, batch.status, target, ctx.now(), changes, [f for f in (output, errors) if f]
        )
    except BaseException:
        await _discard(ctx, output, errors)
        raise
    if not moved:
        await _discard(ctx, output, errors)
    elif batch.dispatch_key is not None:
        await ctx.blobs.delete(batch.dispatch_key)  # scratch state: the batch will send nothing more
    return moved


async def _discard(ctx: WorkerContext, *files: FileRecord | None) -> None:
    for file in files:
        if file is not None:
            await ctx.blobs.delete(file.storage_key)


async def _write(ctx: WorkerContext, batch: BatchRecord, kind: str, lines: AsyncIterable[bytes]) -> FileRecord:
    key = ids.file_id()
    digest = hashlib.sha256()

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in _chunked(lines):
            digest.update(chunk)
            yield chunk

    size = await ctx.blobs.write(key, chunks())
    now = ctx.now()
    retention = batch.output_expires_seconds or ctx.finalizing.file_retention_seconds
    return FileRecord(
        key,
        batch.scope,
        f"{batch.id}_{kind}.jsonl",
        OUTPUT_PURPOSE,
        size,
        digest.hexdigest(),
        key,
        now,
        now + retention,
    )


async def _chunked(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for line in lines:
        buffer += line
        buffer += b"\n"
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


async def _output_lines(ctx: WorkerContext, batch: BatchRecord) -> AsyncIterator[bytes]:
    async for row in ctx.store.results(batch.id):
        if row.ok:
            yield row.record


async def _failed_lines(ctx: WorkerContext, batch: BatchRecord) -> AsyncIterator[bytes]:
    async for row in ctx.store.results(batch.id):
        if not row.ok:
            yield row.record


async def _error_lines(ctx: WorkerContext, batch: BatchRecord, code: str) -> AsyncIterator[bytes]:
    """Failed answers and unanswered lines, merged in input order."""
    results = aiter(ctx.store.results(batch.id))
    row = await anext(results, None)
    async for line, raw in input_lines(ctx, batch):
        while row is not None and row.line < line:
            row = await anext(results, None)
        if row is not None and row.line == line:
            if not row.ok:
                yield row.record
            continue
        assert raw is not None  # validation refused any batch with a line over the size limit
        request = parse_line(raw, line, batch.endpoint, ctx.finalizing.max_line_bytes)
        yield unanswered_line(ids.request_id(), request.custom_id, code)
