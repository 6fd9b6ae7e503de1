"""Sets of custom_ids kept on disk (a throw-away SQLite file each), so a million ids cost no memory.

Imports nothing but the standard library, orjson and pure logic of domain/: the upload check's own small
process uses it, and so does the worker's validation; it lives outside both so that api/ need not depend on worker/.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from batchgate.domain.id_runs import Taken, counted_run

if TYPE_CHECKING:
    from batchgate.settings import Settings

MAX_RANGES = 10_000  # runs kept as numbers, at most: past it (ids that count up, with gaps), the set takes over
RUN_IDS_AT_ONCE = 10_000  # ids of a run written into the set at once


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

    The key refuses a repeat, so one B-tree insert per id answers the question as the ids arrive. Groups
    of ids that count up (request-1, request-2, …: domain/id_runs.py) are counted() instead, as ranges
    of numbers: a few bytes and no insert each, until a group does not count up. From then on add()
    takes every group, after it has put the runs so far into the set.
    """

    def __init__(self, folder: Path):
        super().__init__(folder, "CREATE TABLE ids (custom_id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._taken = Taken()  # the runs counted, not yet in the set
        self._counting = True  # until a group does not count up: then every group goes to add()

    def counted(self, custom_ids: list[str]) -> bool | None:
        """Take ids that count up as a run of numbers, with no insert: False if one was taken before.

        None when they do not count up (or too many runs are kept): add() takes them and every group after,
        on a thread of the caller's if it likes, since this then reads nothing add() writes.
        """
        run = counted_run(custom_ids) if self._counting and self._taken.ranges < MAX_RANGES else None
        if run is None:
            self._counting = False
            return None
        return self._taken.take(run)

    def add(self, custom_ids: list[str]) -> bool:
        """Insert on the caller's thread (SQLite runs without the GIL), after the runs counted so far; False if
        an id was there already."""
        self._counting = False
        taken, self._taken = self._taken, Taken()
        for run in taken:  # runs never share an id: their numbers never meet
            for start in range(run.first, run.end, RUN_IDS_AT_ONCE):
                self._insert(run.ids(start, min(start + RUN_IDS_AT_ONCE, run.end)))
        return self._insert(custom_ids)

    def _insert(self, custom_ids: list[str]) -> bool:
        """False if an id was there already.

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
