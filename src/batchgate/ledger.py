"""Finding duplicate custom_ids without holding every id in memory (a scratch SQLite file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from batchgate.scratch_ids import ScratchIds


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
        self._db.execute(
            "INSERT INTO ids SELECT value -> 0, value ->> 1 FROM json_each(?)", (orjson.dumps(pairs),)
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
