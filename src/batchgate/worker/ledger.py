"""Finding duplicate custom_ids without holding every id in memory (a scratch SQLite file)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import orjson

from batchgate.settings import Settings


def scratch_folder(settings: Settings) -> Path:
    return settings.data_dir / "tmp"


class _ScratchIds:
    """A throw-away SQLite file of custom_ids (`ids-*.db` in the scratch folder), removed on close."""

    def __init__(self, folder: Path, *schema: str):
        folder.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(dir=folder, prefix="ids-", suffix=".db", delete=False)
        self._file.close()
        self._db = sqlite3.connect(self._file.name, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        for statement in schema:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()
        Path(self._file.name).unlink(missing_ok=True)


class CustomIdLedger(_ScratchIds):
    def __init__(self, folder: Path):
        super().__init__(folder, "CREATE TABLE ids (custom_id TEXT NOT NULL, line INTEGER NOT NULL)",
                         "CREATE INDEX ids_by_id ON ids (custom_id, line)")
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
        self._db.execute("INSERT INTO ids SELECT value -> 0, value ->> 1 FROM json_each(?)",
                         (orjson.dumps(pairs),)).close()

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
                "WITH repeated AS (SELECT custom_id, MIN(line) AS first FROM ids GROUP BY custom_id HAVING COUNT(*) > 1) "
                "SELECT d.custom_id, r.first, d.line FROM repeated r JOIN ids d ON d.custom_id = r.custom_id "
                "AND d.line > r.first ORDER BY d.line LIMIT ?", (limit,)).fetchall()

        return [(orjson.loads(custom_id), first, line) for custom_id, first, line in await asyncio.to_thread(query)]


class UniqueIds(_ScratchIds):
    """Whether any custom_id repeats, for a check that needs no more (an upload's); kept on disk like the ledger.

    The key refuses a repeat, so one B-tree insert per id answers the question as the ids arrive.
    """

    def __init__(self, folder: Path):
        super().__init__(folder, "CREATE TABLE ids (custom_id TEXT PRIMARY KEY) WITHOUT ROWID")

    def add(self, custom_ids: list[str]) -> bool:
        """Insert on the caller's thread (SQLite runs without the GIL); False if an id was there already.

        json_each cuts a text at a NUL byte, so ids that differ only after one look alike here: such a
        file merely counts as having a repeat, and its batch's own validation (whole ids) decides.
        """
        try:
            self._db.execute("INSERT INTO ids SELECT value FROM json_each(?)", (orjson.dumps(custom_ids),)).close()
        except sqlite3.IntegrityError:
            return False
        return True
