"""Sets of custom_ids kept on disk (a throw-away SQLite file each), so a million ids cost no memory.

Imports nothing but the standard library and orjson: the upload check's own small process uses it.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from batchgate.settings import Settings


def scratch_folder(settings: Settings) -> Path:
    return settings.data_dir / "tmp"


class ScratchIds:
    """A throw-away SQLite file of custom_ids in the scratch folder.

    Its name (`ids-*.db`) is removed as soon as it is open: SQLite keeps using the open file (no
    journal is ever opened beside it), and the disk space comes back when it closes, however the
    process ends, even killed. The stale-file sweep only meets a name left in that instant.
    """

    def __init__(self, folder: Path, *schema: str):
        folder.mkdir(parents=True, exist_ok=True)
        file = tempfile.NamedTemporaryFile(dir=folder, prefix="ids-", suffix=".db", delete=False)
        file.close()
        try:
            self._db = sqlite3.connect(file.name, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            for statement in schema:
                self._db.execute(statement)
        finally:
            Path(file.name).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()


class CustomIds(ScratchIds):
    """A file's custom_ids, each with the line it first appears on: the one repeat check of both passes.

    The upload's check calls add() on its own thread; the validating stage (worker/ledger.py) on a
    thread beside its parsing. The key refuses a repeat, so an add without one (the usual case) costs
    one B-tree insert per id, and only an add that met a repeat looks its ids up again. Ids are kept
    as their JSON text, which SQLite compares whole, NUL bytes included.
    """

    def __init__(self, folder: Path):
        super().__init__(folder, "CREATE TABLE ids (custom_id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")

    def add(self, pairs: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
        """Take (custom_id, line) pairs in line order, after those of earlier adds; answer each repeat among
        them as (custom_id, first line, repeating line), in line order.

        One statement unpacks the whole list inside SQLite, which runs without the GIL.
        """
        if not pairs:
            return []
        text = orjson.dumps(pairs)
        cursor = self._db.execute("INSERT INTO ids SELECT value -> 0, value ->> 1 FROM json_each(?) WHERE true "
                                  "ON CONFLICT DO NOTHING", (text,))
        added = cursor.rowcount
        cursor.close()  # here, not by the garbage collector on whatever thread drops it (SQLITE_MISUSE)
        if added == len(pairs):
            return []
        cursor = self._db.execute("SELECT j.value -> 0, i.line, j.value ->> 1 FROM json_each(?) j "
                                  "JOIN ids i ON i.custom_id = j.value -> 0 WHERE i.line <> j.value ->> 1 "
                                  "ORDER BY 3", (text,))
        try:
            return [(orjson.loads(custom_id), first, line) for custom_id, first, line in cursor.fetchall()]
        finally:
            cursor.close()
