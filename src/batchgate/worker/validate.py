"""The validating stage: stream the input file once and check every line, unless its upload did."""

from __future__ import annotations

from contextlib import aclosing

from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits
from batchgate.domain.lines import LineError, ValidationReport
from batchgate.domain.records import BatchRecord, FileRecord
from batchgate.domain.shards import ShardCutter
from batchgate.errors import InputMissing
from batchgate.ledger import CustomIdLedger, check_chunks
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import located_input_chunks


async def validate_input(ctx: WorkerContext, batch: BatchRecord, cutter: ShardCutter | None = None) -> ValidationReport:
    """Check every line; `cutter` (if given) is fed each request's line and offset to cut shards."""
    settings = ctx.validation
    if (summary := await _checked_at_upload(ctx, batch)) is not None:
        if cutter is not None:
            cutter.restore(summary.grains, summary.requests, summary.last_line)
        return ValidationReport.of_clean_file(settings.max_reported_errors, summary.requests, summary.model)
    report = ValidationReport(keep=settings.max_reported_errors)
    ledger = CustomIdLedger(settings.scratch_folder)
    try:
        await _check_lines(ctx, batch, report, ledger, cutter)
    except InputMissing as missing:
        report.add_error(LineError(1, "input_file_not_found", missing.message))
    finally:
        await ledger.settle()
        ledger.close()
    return report


async def _checked_at_upload(ctx: WorkerContext, batch: BatchRecord) -> FileSummary | None:
    """The upload's summary of the input file, if it found the file clean for this batch under today's limits.

    The file must still be there: without it, the full pass reports it missing.
    """
    summary = await ctx.store.file_summary(batch.input_file_id)
    if summary is None or not summary.fits(batch.endpoint, LineLimits.of(ctx.validation)):
        return None
    file = await ctx.store.get_file(batch.scope, batch.input_file_id)
    return summary if file is not None and await _stored(ctx, file) else None


async def _stored(ctx: WorkerContext, file: FileRecord) -> bool:
    try:  # its last byte is enough to know
        async with aclosing(ctx.blobs.read(file.storage_key, max(0, file.bytes - 1))) as chunks:
            await anext(chunks, None)
    except FileNotFoundError:
        return False
    return True


async def _check_lines(
    ctx: WorkerContext, batch: BatchRecord, report: ValidationReport, ledger: CustomIdLedger, cutter: ShardCutter | None
) -> None:
    check = FileCheck(LineLimits.of(ctx.validation), batch.endpoint, report.add_error, cutter)
    try:
        await check_chunks(located_input_chunks(ctx, batch), check, ledger, ctx.validation.max_reported_errors)
    finally:
        report.request_count = check.requests
        for model in check.models:
            report.add_model(model)
