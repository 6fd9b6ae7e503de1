"""The validating stage: stream the input file once and check every line."""

from __future__ import annotations

from batchgate.domain.lines import LineError, ValidationReport, parse_line
from batchgate.domain.records import BatchRecord
from batchgate.domain.shards import ShardCutter
from batchgate.errors import InputMissing
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import located_input_lines
from batchgate.worker.ledger import CustomIdLedger, scratch_folder

LEDGER_CHUNK = 10_000


async def validate_input(ctx: WorkerContext, batch: BatchRecord, cutter: ShardCutter | None = None) -> ValidationReport:
    """Check every line; `cutter` (if given) is fed each request's line and offset to cut shards."""
    settings = ctx.settings
    report = ValidationReport(keep=settings.max_reported_errors)
    ledger = CustomIdLedger(scratch_folder(settings))
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


async def _check_lines(ctx: WorkerContext, batch: BatchRecord, report: ValidationReport,
                       ledger: CustomIdLedger, cutter: ShardCutter | None) -> None:
    settings = ctx.settings
    pending: list[tuple[str, int]] = []
    async for line, offset, raw in located_input_lines(ctx, batch):
        report.request_count += 1
        if report.request_count > settings.max_lines:
            report.add_error(LineError(line, "too_many_tasks",
                                       f"The file has more than {settings.max_lines} requests (line {line})."))
            break
        try:
            if raw is None:
                raise LineError(line, "line_too_long",
                                f"Line {line} is longer than {settings.max_line_bytes} bytes.")
            request = parse_line(raw, line, batch.endpoint, settings.max_line_bytes)
        except LineError as error:
            report.add_error(error)
            continue
        report.add_request(request)
        if cutter is not None:
            cutter.add(line, offset)
        pending.append((request.custom_id, line))
        if len(pending) >= LEDGER_CHUNK:
            await ledger.add(pending)
            pending = []
    await ledger.add(pending)
    for custom_id, first, line in await ledger.duplicates(settings.max_reported_errors):
        report.add_error(LineError(line, "duplicate_custom_id",
                                   f"Line {line}: custom_id {custom_id!r} was already used on line {first}.",
                                   "custom_id"))
