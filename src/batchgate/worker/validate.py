"""The validating stage: stream the input file once and check every line, unless its upload did."""

from __future__ import annotations

from contextlib import aclosing

from batchgate.domain.file_check import FileSummary, LineLimits
from batchgate.domain.lines import LineError, ValidationReport, is_blank, parse_line, well_formed
from batchgate.domain.records import BatchRecord, FileRecord
from batchgate.domain.shards import ShardCutter
from batchgate.errors import InputMissing
from batchgate.worker.context import ValidateSettings, WorkerContext
from batchgate.worker.inputs import located_input_batches
from batchgate.worker.ledger import CustomIdLedger

LEDGER_CHUNK = 10_000


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
    if report.request_count == 0 and report.ok:
        report.add_error(LineError(1, "empty_file", "The input file has no requests."))
    return report


async def _checked_at_upload(ctx: WorkerContext, batch: BatchRecord) -> FileSummary | None:
    """The upload's summary of the input file, if it found the file clean for this batch under today's limits.

    The file must still be there: without it, the full pass reports it missing, as it always has.
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
    settings = ctx.validation
    pending: list[tuple[str, int]] = []
    async with aclosing(located_input_batches(ctx, batch)) as batches:
        async for located in batches:
            if not _check_batch(located, batch.endpoint, settings, report, cutter, pending):
                break
            if len(pending) >= LEDGER_CHUNK:
                await ledger.add(pending)
                pending = []
    await ledger.add(pending)
    for custom_id, first, line in await ledger.duplicates(settings.max_reported_errors):
        report.add_error(
            LineError(
                line,
                "duplicate_custom_id",
                f"Line {line}: custom_id {custom_id!r} was already used on line {first}.",
                "custom_id",
            )
        )


def _check_batch(
    located: list[tuple[int, int, bytes | None]],
    endpoint: str,
    settings: ValidateSettings,
    report: ValidationReport,
    cutter: ShardCutter | None,
    pending: list[tuple[str, int]],
) -> bool:
    """Check one chunk's lines, adding (custom_id, line) of each request to `pending`; False past the line limit.

    A plain loop with the well-formed case first: this runs once per line of every file.
    """
    count, max_lines, max_depth, last_model = report.request_count, settings.max_lines, settings.max_json_depth, None
    for line, offset, raw in located:
        fast = None if raw is None else well_formed(raw, endpoint, max_depth)
        if fast is None and raw is not None and is_blank(raw):
            continue
        count += 1
        if count > max_lines:
            report.request_count = count
            report.add_error(
                LineError(line, "too_many_tasks", f"The file has more than {max_lines} requests (line {line}).")
            )
            return False
        if fast is not None:
            custom_id, model = fast
        else:
            try:
                if raw is None:
                    raise LineError(
                        line, "line_too_long", f"Line {line} is longer than {settings.max_line_bytes} bytes."
                    )
                request = parse_line(raw, line, endpoint, settings.max_line_bytes, max_depth)
            except LineError as error:
                report.add_error(error)
                continue
            custom_id, model = request.custom_id, request.model
        if model != last_model:
            report.add_model(model)
            last_model = model
        if cutter is not None:
            cutter.add(line, offset)
        pending.append((custom_id, line))
    report.request_count = count
    return True
