"""Reading a batch's input file, line by line, as every stage does."""

from __future__ import annotations

from typing import AsyncIterator

from batchgate.blobs.lines import numbered_lines
from batchgate.domain.lines import is_blank
from batchgate.domain.records import BatchRecord
from batchgate.errors import InputMissing
from batchgate.worker.context import WorkerContext


async def input_lines(ctx: WorkerContext, batch: BatchRecord) -> AsyncIterator[tuple[int, bytes | None]]:
    """(1-based line number, bytes) for each non-blank line; None stands for a line over the size limit."""
    file = await ctx.store.get_file(batch.scope, batch.input_file_id)
    if file is None:
        raise InputMissing(f"The input file {batch.input_file_id} no longer exists.")
    try:
        async for line, raw in numbered_lines(ctx.blobs.read(file.storage_key), ctx.settings.max_line_bytes):
            if raw is None or not is_blank(raw):
                yield line, raw
    except FileNotFoundError:
        raise InputMissing(f"The bytes of input file {batch.input_file_id} are missing from storage.") from None
