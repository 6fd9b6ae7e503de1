"""The validating stage: stream the input file once and check every line."""

from __future__ import annotations

from batchgate.blobs.lines import numbered_lines
from batchgate.domain.lines import LineError, ValidationReport, is_blank, parse_line
from batchgate.domain.records import BatchRecord
from batchgate.worker.context import WorkerContext
from batchgate.worker.ledger import CustomIdLedger

LEDGER_CHUNK = 10_000


async def validate_input(ctx: WorkerContext, batch: BatchRecord) -> ValidationReport:
    settings = ctx.settings
    report = ValidationReport(keep=settings.max_reported_errors)
    file = await ctx.store.get_file(batch.scope, batch.input_file_id)
    if file is None:
        report.add_error(LineError(1, "input_file_not_found",
                                   f"The input file {batch.input_file_id} was deleted before the batch started."))
        return report
    ledger = CustomIdLedger(settings.data_dir / "tmp")
    try:
        await _check_lines(ctx, batch, file.storage_key, report, ledger)
    except FileNotFoundError:
        report.add_error(LineError(1, "input_file_not_found",
                                   f"The bytes of input file {batch.input_file_id} are missing from storage."))
    finally:
        ledger.close()
    if report.request_count == 0 and report.ok:
        report.add_error(LineError(1, "empty_file", "The input file has no requests."))
    return report


async def _check_lines(ctx: WorkerContext, batch: BatchRecord, key: str, report: ValidationReport,
                       ledger: CustomIdLedger) -> None:
    settings = ctx.settings
    pending: list[tuple[str, int]] = []
    async for line, raw in numbered_lines(ctx.blobs.read(key), settings.max_line_bytes):
        if raw is not None and is_blank(raw):
            continue
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
        pending.append((request.custom_id, line))
        if len(pending) >= LEDGER_CHUNK:
            await ledger.add(pending)
            pending = []
    await ledger.add(pending)
    for custom_id, first, line in await ledger.duplicates(settings.max_reported_errors):
        report.add_error(LineError(line, "duplicate_custom_id",
                                   f"Line {line}: custom_id {custom_id!r} was already used on line {first}.",
                                   "custom_id"))
