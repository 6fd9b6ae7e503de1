"""Finding duplicate custom_ids without holding every id in memory (a scratch SQLite file), and the pass
over a file's chunks that feeds a FileCheck and the ledger together (validation and the dry run)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from pathlib import Path

import orjson

from batchgate.domain.file_check import FileCheck, Requests
from batchgate.domain.splitting import Located
from batchgate.scratch_ids import ScratchIds

LEDGER_CHUNK = 10_000  # custom_ids inserted into the scratch table at once


class CustomIdLedger(ScratchIds):
    def __init__(self, folder: Path):
        super().__init__(
            folder,
            "CREATE TABLE ids (custom_id TEXT NOT NULL, line INTEGER NOT NULL)",
            "CREATE INDEX ids_by_id ON ids (custom_id, line)",
        )
        self._adding: asyncio.Future | None = None

    async def add(self, pairs: list[tuple[str, int]]) -> None:
        """Insert in a thread while the caller parses the next lines; one insert at a time."""
        await self.settle()
        self._adding = asyncio.ensure_future(asyncio.to_thread(self._insert, pairs))

    def _insert(self, pairs: list[tuple[str, int]]) -> None:
        # The cursor is closed in this thread: left to the garbage collector, it would reset its
        # statement on whatever thread drops it, perhaps while the next insert runs (SQLITE_MISUSE).
        # One statement unpacks the whole list inside SQLite, which runs without the GIL, so the insert
        # overlaps the parsing of the next lines instead of competing for the interpreter row by row.
        # Ids are kept as their JSON text ('->'), which SQLite compares whole, NUL bytes included.
        # Sorted by id, as UniqueIds does, so the index is walked once per insert, not once per random id.
        self._db.execute(
            "INSERT INTO ids SELECT value -> 0, value ->> 1 FROM json_each(?) ORDER BY 1", (orjson.dumps(pairs),)
        ).close()

    async def settle(self) -> None:
        """Wait for the insert still running, if any."""
        adding, self._adding = self._adding, None
        if adding is not None:
            await adding

    async def duplicates(self, limit: int) -> list[tuple[str, int, int]]:
        """(custom_id, first line, repeating line) for each repeat, earliest repeats first."""
        await self.settle()

        def query() -> list[tuple[str, int, int]]:
            # One pass over the index finds the repeated ids (usually none); only their rows are looked up.
            return self._db.execute(
                "WITH repeated AS "
                "(SELECT custom_id, MIN(line) AS first FROM ids GROUP BY custom_id HAVING COUNT(*) > 1) "
                "SELECT d.custom_id, r.first, d.line FROM repeated r JOIN ids d ON d.custom_id = r.custom_id "
                "AND d.line > r.first ORDER BY d.line LIMIT ?",
                (limit,),
            ).fetchall()

        return [(orjson.loads(custom_id), first, line) for custom_id, first, line in await asyncio.to_thread(query)]


async def check_chunks(
    chunks: AsyncGenerator[list[Located], None],
    check: FileCheck,
    ledger: CustomIdLedger,
    max_reported: int,
    on_good: Callable[[Sequence[Located], Requests], None] | None = None,
) -> None:
    """Feed every chunk to `check` and its requests' custom_ids to `ledger`, then the repeats back to `check`.

    `on_good` sees each chunk's good requests while the file is still clean. `chunks` is closed at the end.
    """
    pairs: list[tuple[str, int]] = []
    async with aclosing(chunks):
        async for located in chunks:
            requests = check.feed(located)
            if on_good is not None and check.clean and requests.lines:
                on_good(located, requests)
            pairs += zip(requests.custom_ids, requests.lines, strict=True)
            if check.stopped:
                break
            if len(pairs) >= LEDGER_CHUNK:
                await ledger.add(pairs)
                pairs = []
    await ledger.add(pairs)
    check.repeated(await ledger.duplicates(max_reported))
    check.end()
