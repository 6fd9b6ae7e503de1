"""Sets of custom_ids kept on disk (a throw-away SQLite file each), so a million ids cost no memory.

Imports nothing but the standard library and orjson: the upload check's own small process uses it, and so
does the worker's validation; it lives outside both so that api/ need not depend on worker/.
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
        with tempfile.NamedTemporaryFile(dir=folder, prefix="ids-", suffix=".db", delete=False) as file:
            name = file.name
        try:
            self._db = sqlite3.connect(name, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            for statement in schema:
                self._db.execute(statement)
        finally:
            Path(name).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()


class UniqueIds(ScratchIds):
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
        # In key order: random ids (UUIDs) would each land on another page of the B-tree; sorted, the
        # inserts walk it once. 10,000 UUIDs at a time: 2.7 s per million against 4.3 unsorted.
        try:
            self._db.execute(
                "INSERT INTO ids SELECT value FROM json_each(?) ORDER BY value", (orjson.dumps(custom_ids),)
            ).close()
        except sqlite3.IntegrityError:
            return False
        return True
