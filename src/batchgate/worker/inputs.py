"""Reading a batch's input file, line by line, as every stage does."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from batchgate.blobs import CHUNK
from batchgate.blobs.base import read_ahead
from batchgate.blobs.lines import located_line_chunks
from batchgate.domain.dispatch_order import HEADER_ROOM, CopyLine, decode
from batchgate.domain.lines import is_blank
from batchgate.domain.records import BatchRecord
from batchgate.domain.splitting import Located
from batchgate.errors import InputMissing
from batchgate.store import ShardLease
from batchgate.worker.context import WorkerContext

# A shard's first read: a shard needs a few hundred lines, and several shards read at once, so each
# reads about what it uses (reads then double) instead of a megabyte cut into thousands of lines (I4).
SHARD_FIRST_CHUNK = 64 * 1024


async def located_input_lines(
    ctx: WorkerContext, batch: BatchRecord, shard: ShardLease | None = None
) -> AsyncGenerator[Located, None]:
    """Each non-blank line of the whole file or of one shard (raw None: a line over the size limit)."""
    async with aclosing(located_input_chunks(ctx, batch, shard)) as chunks:
        async for located in chunks:
            for item in located:
                if item.raw is None or not is_blank(item.raw):
                    yield item


async def located_input_chunks(
    ctx: WorkerContext, batch: BatchRecord, shard: ShardLease | None = None
) -> AsyncGenerator[list[Located], None]:
    """located_input_lines a chunk's worth at a time (never an empty list), blank lines included.

    For a reader of every line: it skips blank lines itself, after its own fast path for the usual line.
    """
    file = await ctx.store.get_file(batch.scope, batch.input_file_id)
    if file is None:
        raise InputMissing(f"The input file {batch.input_file_id} no longer exists.")
    missing = f"The bytes of input file {batch.input_file_id} are missing from storage."
    async with aclosing(_stored_chunks(ctx, file.storage_key, missing, shard, ctx.reading.max_line_bytes)) as chunks:
        async for located in chunks:
            yield located


async def dispatch_copy_lines(
    ctx: WorkerContext, batch: BatchRecord, shard: ShardLease
) -> AsyncGenerator[list[CopyLine], None]:
    """The lines of a shard of a planned batch, read from its dispatch copy (domain/dispatch_order.py)."""
    assert batch.dispatch_key is not None  # only a planned batch has a copy
    missing = f"The dispatch copy of batch {batch.id} is missing from storage."
    room = ctx.reading.max_line_bytes + HEADER_ROOM
    async with aclosing(_stored_chunks(ctx, batch.dispatch_key, missing, shard, room)) as chunks:
        async for located in chunks:
            yield [decode(item.raw) for item in located if item.raw]


async def _stored_chunks(
    ctx: WorkerContext, key: str, missing: str, shard: ShardLease | None, max_line_bytes: int
) -> AsyncGenerator[list[Located], None]:
    first_line, offset, last_line = (shard.first_line, shard.offset, shard.last_line) if shard else (1, 0, None)
    first_chunk = SHARD_FIRST_CHUNK if shard else CHUNK
    try:
        # Closed explicitly: a shard stops reading mid-file, and an open S3 body holds a connection.
        async with (
            aclosing(read_ahead(ctx.blobs.read(key, offset, first_chunk))) as chunks,
            aclosing(located_line_chunks(chunks, max_line_bytes, first_line, offset)) as lines,
        ):
            async for located in lines:
                if last_line is not None and located[-1].line > last_line:
                    if kept := [item for item in located if item.line <= last_line]:
                        yield kept
                    return
                yield located
    except FileNotFoundError:
        raise InputMissing(missing) from None


async def input_lines(
    ctx: WorkerContext, batch: BatchRecord, shard: ShardLease | None = None
) -> AsyncGenerator[tuple[int, bytes | None], None]:
    """(1-based line number, bytes) for each non-blank line; None stands for a line over the size limit."""
    async for located in located_input_lines(ctx, batch, shard):
        yield located.line, located.raw
