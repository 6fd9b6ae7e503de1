"""`"dry_run": true` on POST /batches: the input file checked by the validating stage's own rules, and its
plan (domain/plan.py) answered instead of a batch. Nothing is written and no worker wakes.

The file streams from the blob store a chunk at a time (invariant I4); repeated custom_ids are found in a
scratch SQLite table, as the validating stage finds them, so memory stays flat however big the file is.
A file with problems answers 400 (code invalid_input_file) naming the errors a batch over it would fail
with, line numbers and all.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from batchgate.api.services import Services
from batchgate.blobs.lines import located_line_chunks
from batchgate.domain.file_check import FileCheck, LineLimits, Requests, good_lines
from batchgate.domain.lines import LineError, ValidationReport
from batchgate.domain.plan import Plan, PlanTally
from batchgate.domain.records import FileRecord
from batchgate.domain.splitting import Located
from batchgate.errors import InvalidRequest
from batchgate.ledger import CustomIdLedger, check_chunks
from batchgate.scratch_ids import scratch_folder

LISTED_ERRORS = 10  # in the error's one-line message; the envelope has no room for a list


async def plan_of(svc: Services, file: FileRecord, endpoint: str) -> Plan:
    """The plan of a file a batch for `endpoint` would accept; a 400 invalid_input_file when it would fail."""
    settings = svc.settings
    report, tally = ValidationReport(keep=settings.max_reported_errors), PlanTally(endpoint)
    ledger = CustomIdLedger(scratch_folder(settings))
    try:
        await _check(svc, file, FileCheck(LineLimits.of(settings), endpoint, report.add_error), ledger, tally)
    except FileNotFoundError:
        report.add_error(
            LineError(1, "input_file_not_found", f"The bytes of input file {file.id} are missing from storage.")
        )
    finally:
        await ledger.settle()
        ledger.close()
    if not report.ok:
        raise _refusal(file, report)
    return tally.plan()


def _refusal(file: FileRecord, report: ValidationReport) -> InvalidRequest:
    """One line in the error envelope: the count, and the earliest problems with their line numbers."""
    errors = sorted(report.errors, key=attrgetter("line"))
    listed = " ".join(error.message for error in errors[:LISTED_ERRORS])
    more = report.error_count - min(len(errors), LISTED_ERRORS)
    rest = f" … and {more} more (batchgate validate FILE lists them all)." if more else ""
    return InvalidRequest(
        f"A batch over input file {file.id} would fail with {report.error_count} problem(s): {listed}{rest}",
        param="input_file_id",
        code="invalid_input_file",
    )


async def _check(svc: Services, file: FileRecord, check: FileCheck, ledger: CustomIdLedger, tally: PlanTally) -> None:
    def plan(located: Sequence[Located], requests: Requests) -> None:  # once the file fails, no plan matters
        tally.add_lines(good_lines(located, requests.lines))

    chunks = located_line_chunks(svc.blobs.read(file.storage_key), check.limits.max_line_bytes)
    await check_chunks(chunks, check, ledger, svc.settings.max_reported_errors, plan)
