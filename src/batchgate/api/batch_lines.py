"""A finished batch's lines, read from its files: its results by line number, and the requests that failed.

Everything streams: one line of each file is held at a time (invariant I4).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson

from batchgate.api.services import Services
from batchgate.blobs.lines import located_line_batches
from batchgate.domain.lines import is_blank
from batchgate.domain.records import BatchRecord
from batchgate.domain.result_merge import InputLine, ResultLine, matched_lines
from batchgate.errors import Conflict

# The gateway wrote its output and error files itself: a line of them is taken whole, whatever its size.
OWN_LINES = 1 << 62


async def _lines(svc: Services, storage_key: str, max_line_bytes: int) -> AsyncGenerator[tuple[int, bytes], None]:
    """(1-based line number, bytes) of each non-blank line of a stored blob."""
    async with aclosing(located_line_batches(svc.blobs.read(storage_key), max_line_bytes)) as batches:
        async for located in batches:
            for line, _, raw in located:
                if raw is not None and not is_blank(raw):
                    yield line, raw


async def _input_lines(svc: Services, batch: BatchRecord) -> AsyncGenerator[InputLine, None]:
    file = await svc.store.get_file(batch.scope, batch.input_file_id)
    if file is None:
        raise Conflict(
            f"The input file {batch.input_file_id} of batch {batch.id} has been deleted: its lines cannot be "
            "matched any more; download the batch's output and error files instead.",
            param="batch_id",
            code="input_file_deleted",
        )
    try:
        async for line, raw in _lines(svc, file.storage_key, svc.settings.max_line_bytes):
            yield InputLine(line, orjson.loads(raw)["custom_id"], raw)
    except FileNotFoundError:
        raise Conflict(
            f"The bytes of input file {batch.input_file_id} are missing from storage.",
            param="batch_id",
            code="input_file_deleted",
        ) from None


async def _result_lines(svc: Services, batch: BatchRecord, file_id: str | None) -> AsyncGenerator[ResultLine, None]:
    """The lines of the batch's output or error file; none if it has none or it was deleted since."""
    file = await svc.store.get_file(batch.scope, file_id) if file_id else None
    if file is None:
        return
    try:
        async for _, raw in _lines(svc, file.storage_key, OWN_LINES):
            yield ResultLine(orjson.loads(raw)["custom_id"], raw)
    except FileNotFoundError:
        return


async def finished_results(svc: Services, batch: BatchRecord, after: int) -> AsyncGenerator[tuple[int, bytes], None]:
    """(line, output or error line) of every input line after `after`, in input order."""
    inputs = _input_lines(svc, batch)
    output = _result_lines(svc, batch, batch.output_file_id)
    errors = _result_lines(svc, batch, batch.error_file_id)
    async with (
        aclosing(inputs),
        aclosing(output),
        aclosing(errors),
        aclosing(matched_lines(inputs, output, errors)) as matched,
    ):
        async for request, result in matched:
            if request.line > after:
                yield request.line, result.raw


async def failed_requests(svc: Services, batch: BatchRecord) -> AsyncGenerator[bytes, None]:
    """The original input line of each line in the batch's error file, in input order."""
    inputs = _input_lines(svc, batch)
    errors = _result_lines(svc, batch, batch.error_file_id)
    async with aclosing(inputs), aclosing(errors), aclosing(matched_lines(inputs, errors)) as matched:
        async for request, _ in matched:
            yield request.raw
