"""Planning a batch's dispatch order by prefix group (domain/dispatch_order.py), with memory flat in its size.

One pass over the validated input gives each line its prefix key (domain/prefix.py) and counts the runs
of keys. If the groups already lie in runs the file order is kept and nothing is written. Otherwise the
lines go into a scratch SQLite table and come out ordered by group into the dispatch copy, a blob that
lives while the batch runs; its shards are cut over the copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import orjson

from batchgate.blobs import CHUNK
from batchgate.domain.dispatch_order import CopyLine, RunCount, encode, lone_key
from batchgate.domain.lines import is_blank
from batchgate.domain.prefix import prefix_key
from batchgate.domain.records import BatchRecord
from batchgate.domain.shards import ShardCutter, ShardSpan
from batchgate.domain.splitting import Located
from batchgate.scratch_ids import ScratchIds
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import located_input_chunks

FETCH_ROWS = 2_000
# The lines looked at first: if no two of them share a prefix, the batch is taken for one without groups
# and sent as it is, without a pass over the whole file (docs/caching.md says when that guess is wrong).
SAMPLE_LINES = 4_096


def copy_key(batch_id: str) -> str:
    """The dispatch copy's blob key: one per batch, so a planning pass that is run again overwrites it."""
    return f"dispatch-{batch_id}"


@dataclass(frozen=True, slots=True)
class DispatchPlan:
    """How a batch's lines go out: from its dispatch copy (`key`, shards over it) or in file order (None)."""

    grouped: bool  # some group has two lines or more; else no line needs its prefix key when sent
    key: str | None = None
    spans: list[ShardSpan] | None = None


class GroupLedger(ScratchIds):
    """The runs of prefix keys of a batch, then, if a key comes back after its run, its lines, kept on disk."""

    def __init__(self, folder: Path):
        super().__init__(
            folder,
            "CREATE TABLE runs (key BLOB NOT NULL)",
            "CREATE TABLE lines (line INTEGER PRIMARY KEY, key BLOB NOT NULL, raw BLOB NOT NULL)",
        )

    def add_runs(self, keys: list[bytes]) -> None:
        self._db.executemany("INSERT INTO runs VALUES (?)", ((key,) for key in keys)).close()

    def in_runs(self) -> bool:
        """No key starts two runs: each group's lines already lie together."""
        (repeats,) = self._db.execute("SELECT COUNT(*) - COUNT(DISTINCT key) FROM runs").fetchone()
        return not repeats

    def add(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        self._db.executemany("INSERT INTO lines VALUES (?, ?, ?)", rows).close()

    def ordered(self) -> Generator[list[CopyLine], None, None]:
        """Every line as a CopyLine, groups by their first line, lines in order within a group; a list at a time."""
        self._db.execute("CREATE INDEX lines_by_key ON lines (key, line)").close()
        cursor = self._db.execute(
            "WITH firsts AS (SELECT key, MIN(line) AS first FROM lines GROUP BY key) "
            "SELECT l.line, f.first, l.raw FROM lines l JOIN firsts f ON f.key = l.key ORDER BY f.first, l.line"
        )
        try:
            while rows := cursor.fetchmany(FETCH_ROWS):
                yield [CopyLine(*row) for row in rows]
        finally:
            cursor.close()


async def plan_dispatch(
    ctx: WorkerContext, batch: BatchRecord, new_cutter: Callable[[], ShardCutter], copy: bool = True
) -> DispatchPlan:
    """The dispatch copy of a validated batch and its shards, unless the file order is group order already
    (or `copy` is false: then only whether the batch has groups).

    A batch whose first SAMPLE_LINES share no prefix is sent as it is. Otherwise the first pass keeps
    only where each run of keys starts, so a batch whose groups lie in runs pays a read of its file and
    no more; only a shuffled one is read again into the scratch table.
    """
    if not await _groups_among_first_lines(ctx, batch):
        return DispatchPlan(grouped=False)
    if not copy:
        return DispatchPlan(grouped=True)
    ledger = GroupLedger(ctx.validation.scratch_folder)
    try:
        runs, lines, heads = RunCount(), 0, 0
        async for rows in _keyed_chunks(ctx, batch):
            started = runs.heads(key for _, key, _ in rows)
            lines, heads = lines + len(rows), heads + len(started)
            await asyncio.to_thread(ledger.add_runs, started)
        if await asyncio.to_thread(ledger.in_runs):
            return DispatchPlan(grouped=heads < lines)  # a run of two lines or more is a group
        async for rows in _keyed_chunks(ctx, batch):
            await asyncio.to_thread(ledger.add, rows)
        cutter = new_cutter()
        key = copy_key(batch.id)
        await ctx.blobs.write(key, _copy(ledger, cutter))
        return DispatchPlan(True, key, cutter.spans())
    finally:
        ledger.close()


async def _groups_among_first_lines(ctx: WorkerContext, batch: BatchRecord) -> bool:
    """Whether two of the first SAMPLE_LINES requests share a prefix key (a sample costs milliseconds)."""
    seen: set[bytes] = set()
    looked = 0
    async with aclosing(_keyed_chunks(ctx, batch)) as chunks:
        async for rows in chunks:
            for _, key, _ in rows[: SAMPLE_LINES - looked]:
                if key in seen:
                    return True
                seen.add(key)
            looked += len(rows)
            if looked >= SAMPLE_LINES:
                break
    return False


async def _keyed_chunks(ctx: WorkerContext, batch: BatchRecord) -> AsyncGenerator[list[tuple[int, bytes, bytes]], None]:
    """(line, group key, raw) of each request of the input, a chunk at a time."""
    async with aclosing(located_input_chunks(ctx, batch)) as chunks:
        async for located in chunks:
            yield _keyed(batch.endpoint, located)


def _keyed(endpoint: str, located: list[Located]) -> list[tuple[int, bytes, bytes]]:
    rows = []
    for line, _, raw in located:
        if raw is None or is_blank(raw):
            continue  # validation refused over-long lines; blank ones are not requests
        body = orjson.loads(raw).get("body")
        key = prefix_key(endpoint, body) if isinstance(body, dict) else None
        rows.append((line, key or lone_key(line), raw))
    return rows


async def _copy(ledger: GroupLedger, cutter: ShardCutter) -> AsyncIterator[bytes]:
    """The copy's bytes a chunk at a time, each line noted in `cutter` at its position and offset in the copy."""
    buffer = bytearray()
    position = offset = 0
    rows = ledger.ordered()
    try:
        while (lines := await asyncio.to_thread(next, rows, None)) is not None:
            for line, group, raw in lines:
                position += 1
                cutter.add(position, offset)
                copied = encode(line, group, raw)
                buffer += copied
                buffer += b"\n"
                offset += len(copied) + 1
            if len(buffer) >= CHUNK:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)
    finally:
        rows.close()
