"""Finding duplicate custom_ids without holding every id in memory (a scratch SQLite file)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from batchgate.settings import Settings


def scratch_folder(settings: Settings) -> Path:
    return settings.data_dir / "tmp"


class CustomIdLedger:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(dir=folder, prefix="ids-", suffix=".db", delete=False)
        self._file.close()
        self._db = sqlite3.connect(self._file.name, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE ids (custom_id TEXT NOT NULL, line INTEGER NOT NULL)")
        self._adding: asyncio.Future | None = None

    async def add(self, pairs: list[tuple[str, int]]) -> None:
        """Insert in a thread while the caller parses the next lines; one insert at a time."""
        await self.settle()
        self._adding = asyncio.ensure_future(asyncio.to_thread(self._insert, pairs))

    def _insert(self, pairs: list[tuple[str, int]]) -> None:
        # The cursor is closed in this thread: left to the garbage collector, it would reset its
        # statement on whatever thread drops it, perhaps while the next insert runs (SQLITE_MISUSE).
        self._db.executemany("INSERT INTO ids VALUES (?, ?)", pairs).close()

    async def settle(self) -> None:
        """Wait for the insert still running, if any."""
        adding, self._adding = self._adding, None
        if adding is not None:
            await adding

    async def duplicates(self, limit: int) -> list[tuple[str, int, int]]:
        """(custom_id, first line, repeating line) for each repeat, earliest repeats first."""
        await self.settle()
        def query() -> list[tuple[str, int, int]]:
            self._db.execute("CREATE INDEX IF NOT EXISTS ids_by_id ON ids (custom_id, line)")
            return self._db.execute(
                "SELECT d.custom_id, (SELECT MIN(line) FROM ids f WHERE f.custom_id = d.custom_id), d.line "
                "FROM ids d WHERE EXISTS (SELECT 1 FROM ids e WHERE e.custom_id = d.custom_id AND e.line < d.line) "
                "ORDER BY d.line LIMIT ?", (limit,)).fetchall()

        return await asyncio.to_thread(query)

    def close(self) -> None:
        self._db.close()
        Path(self._file.name).unlink(missing_ok=True)
