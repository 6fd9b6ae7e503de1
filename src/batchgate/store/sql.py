"""The metadata store's logic, written once for every SQL backend.

Each operation is a plain function of a DB-API connection (`?` placeholders), run on a
thread by the backend (sqlite.py, postgresql.py), inside one transaction when it writes.
Where the dialects differ (row locks), the backend supplies the fragment.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import orjson

from batchgate.domain.file_check import FileSummary, LineLimits
from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.requests import Page
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import ACTIVE, TERMINAL, BatchStatus, can_move, timestamp_field
from batchgate.errors import Conflict
from batchgate.store.base import KeyRecord
from batchgate.store.sql_work import FREE_LEASE, PAGE_ROWS, Db, WorkQueries

T = TypeVar("T")
__all__ = ["PAGE_ROWS", "Db", "SqlStore"]

FILE_COLUMNS = "id, owner, on_behalf_of, filename, purpose, bytes, sha256, storage_key, created_at, expires_at"
BATCH_COLUMNS = (
    "id, owner, on_behalf_of, endpoint, input_file_id, completion_window, status, created_at, expires_at, "
    "max_concurrency, metadata, output_expires_seconds, output_file_id, error_file_id, errors, in_progress_at, "
    "finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, total, completed, failed, "
    "input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, model"
)
SUMMARY_COLUMNS = "file_id, endpoint, requests, last_line, model, grains, max_lines, max_line_bytes, shard_lines"
_ACTIVE = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))  # an SQL list of the unfinished statuses
# Statuses a worker drives under the batch lease; in_progress is worked on shard by shard instead.
_DRIVEN = "'validating', 'finalizing', 'cancelling'"
# A file is deleted only while no unfinished batch reads it as input.
DELETE_UNUSED_FILE = (f"DELETE FROM files WHERE id = ? AND NOT EXISTS "
                      f"(SELECT 1 FROM batches WHERE input_file_id = ? AND status IN ({_ACTIVE}))")
UNFINISHED_USER = f"SELECT id FROM batches WHERE input_file_id = ? AND status IN ({_ACTIVE}) LIMIT 1"
INSERT_BATCH_IF_FILE = (
    "INSERT INTO batches (id, owner, on_behalf_of, endpoint, input_file_id, completion_window, status, created_at, "
    "expires_at, max_concurrency, metadata, output_expires_seconds) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM files "
    "WHERE id = ? AND owner = ? AND on_behalf_of = ?{share_file}")
# Columns a status transition may set besides the status and its timestamp.
TRANSITION_COLUMNS = frozenset({"total", "failed", "errors", "output_file_id", "error_file_id", "model"})


def _file(row: tuple) -> FileRecord:
    return FileRecord(row[0], Scope(row[1], row[2]), *row[3:])


def _batch(row: tuple) -> BatchRecord:
    (id_, owner, obo, endpoint, input_file_id, window, status, created_at, expires_at, concurrency, metadata,
     output_expires, output_file_id, error_file_id, errors, *rest) = row
    stamps, counts, tokens, model = rest[:7], rest[7:10], rest[10:15], rest[15]
    return BatchRecord(
        id_, Scope(owner, obo), endpoint, input_file_id, window, BatchStatus(status), created_at, expires_at,
        concurrency, orjson.loads(metadata) if metadata else None, output_expires, output_file_id, error_file_id,
        orjson.loads(errors) if errors else None, *stamps, *counts, usage=Usage(*tokens), model=model)


def _insert_file(db: Db, file: FileRecord) -> None:
    db.execute(
        f"INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (file.id, file.scope.owner, file.scope.on_behalf_of, file.filename, file.purpose, file.bytes, file.sha256,
         file.storage_key, file.created_at, file.expires_at))


class SqlStore(WorkQueries):
    """Every Store operation; subclasses provide `_write`, `_read` and the row-lock fragments."""

    # Row locks, appended to queries: on the batch row a claimer or finisher works on, on the shard a
    # claimer picks (others skip it), and on the shard a result commit is fenced by.
    LOCK_BATCH = ""
    LOCK_SHARD = ""
    FENCE_SHARD = ""
    # On a file row, by its delete (exclusive) and by a batch insert naming it as input (shared).
    LOCK_FILE = ""
    SHARE_FILE = ""

    async def _write(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

    async def _write_freeing_space(self, fn: Callable[[Db], T]) -> T:
        """A write that frees space (a file delete); a backend that keeps room aside for it uses it here."""
        return await self._write(fn)

    async def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        return await self._read(lambda db: db.execute(sql, params).fetchall())

    # keys ---------------------------------------------------------------------------------

    async def create_key(self, key: KeyRecord, secret_hash: str) -> None:
        await self._write(lambda db: db.execute(
            "INSERT INTO api_keys (id, name, owner, secret_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, key.name, key.owner, secret_hash, key.prefix, key.created_at)))

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self._all("SELECT id, name, owner, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        return [KeyRecord(*row) for row in rows]

    async def revoke_key(self, id_or_name: str, now: int) -> int:
        return await self._write(lambda db: db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
            (now, id_or_name, id_or_name)).rowcount)

    async def owner_of_key(self, secret_hash: str) -> str | None:
        rows = await self._all("SELECT owner FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL", (secret_hash,))
        return rows[0][0] if rows else None

    # files --------------------------------------------------------------------------------

    async def insert_file(self, file: FileRecord, summary: FileSummary | None = None) -> None:
        def insert(db: Db) -> None:
            _insert_file(db, file)
            if summary is not None:
                limits = summary.limits
                db.execute(f"INSERT INTO file_summaries ({SUMMARY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (file.id, summary.endpoint, summary.requests, summary.last_line, summary.model,
                            summary.grains, limits.max_lines, limits.max_line_bytes, limits.shard_lines))

        await self._write(insert)

    async def file_summary(self, file_id: str) -> FileSummary | None:
        rows = await self._all(f"SELECT {SUMMARY_COLUMNS} FROM file_summaries WHERE file_id = ?", (file_id,))
        if not rows:
            return None
        _, endpoint, requests, last_line, model, grains, *limits = rows[0]
        return FileSummary(endpoint, requests, last_line, model, bytes(grains), LineLimits(*limits))

    async def get_file(self, scope: Scope, file_id: str) -> FileRecord | None:
        rows = await self._all(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ? AND owner = ? AND on_behalf_of = ?",
                               (file_id, scope.owner, scope.on_behalf_of))
        return _file(rows[0]) if rows else None

    async def list_files(self, scope: Scope, page: Page, purpose: str | None,
                         sha256: str | None) -> tuple[list[FileRecord], bool]:
        filters = {"purpose": purpose, "sha256": sha256}
        rows = await self._page("files", FILE_COLUMNS, scope, page, {k: v for k, v in filters.items() if v})
        return [_file(r) for r in rows[:page.limit]], len(rows) > page.limit

    async def _page(self, table: str, columns: str, scope: Scope, page: Page,
                    filters: dict[str, str] | None = None) -> list[tuple]:
        """One page of `table` in the caller's scope, ordered by insertion, one row more than asked."""
        where = ["owner = ?", "on_behalf_of = ?", *(f"{column} = ?" for column in filters or {})]
        params = [scope.owner, scope.on_behalf_of, *(filters or {}).values()]
        if page.after:
            # The cursor must be the caller's own; an unknown one compares with NULL: an empty page.
            where.append(f"seq {'<' if page.descending else '>'} "
                         f"(SELECT seq FROM {table} WHERE id = ? AND owner = ? AND on_behalf_of = ?)")
            params.extend([page.after, scope.owner, scope.on_behalf_of])
        order = "DESC" if page.descending else "ASC"
        sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        return await self._all(sql, (*params, page.limit + 1))

    async def delete_file(self, file_id: str) -> FileRecord | None:
        def delete(db: Db) -> FileRecord | None:
            # The row lock orders this against a batch insert naming the file (which shares the lock):
            # whichever comes second sees what the first committed, so they never both succeed.
            row = db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?{self.LOCK_FILE}", (file_id,)).fetchone()
            if row is None:
                return None  # a concurrent delete won
            if db.execute(DELETE_UNUSED_FILE, (file_id, file_id)).rowcount == 0:
                user = db.execute(UNFINISHED_USER, (file_id,)).fetchone()
                raise Conflict(f"File {file_id} is the input of batch {user[0]}, which has not finished; wait for it "
                               f"to end or cancel it, then delete the file.", param="file_id", code="file_in_use")
            return _file(row)

        return await self._write_freeing_space(delete)

    async def expired_files(self, now: int, limit: int) -> list[FileRecord]:
        # A file some unfinished batch still reads or writes is kept alive until that batch ends.
        rows = await self._all(
            f"SELECT {FILE_COLUMNS} FROM files f WHERE expires_at IS NOT NULL AND expires_at <= ? "
            f"AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.status IN ({_ACTIVE}) "
            f"AND f.id IN (b.input_file_id, b.output_file_id, b.error_file_id)) LIMIT ?", (now, limit))
        return [_file(r) for r in rows]

    # batches ------------------------------------------------------------------------------

    async def insert_batch(self, batch: BatchRecord) -> bool:
        scope = batch.scope
        params = (batch.id, scope.owner, scope.on_behalf_of, batch.endpoint, batch.input_file_id,
                  batch.completion_window, batch.status.value, batch.created_at, batch.expires_at,
                  batch.max_concurrency, orjson.dumps(batch.metadata).decode() if batch.metadata is not None else None,
                  batch.output_expires_seconds, batch.input_file_id, scope.owner, scope.on_behalf_of)
        # Inserted only while its input file exists (in the batch's scope), holding that file's row lock
        # until the commit, so a concurrent delete of the file either comes first (no batch) or fails.
        sql = INSERT_BATCH_IF_FILE.format(share_file=self.SHARE_FILE)
        return await self._write(lambda db: db.execute(sql, params).rowcount == 1)

    async def get_batch(self, batch_id: str, scope: Scope | None = None) -> BatchRecord | None:
        sql, params = f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
        if scope is not None:
            sql, params = sql + " AND owner = ? AND on_behalf_of = ?", (batch_id, scope.owner, scope.on_behalf_of)
        rows = await self._all(sql, params)
        return _batch(rows[0]) if rows else None

    async def list_batches(self, scope: Scope, page: Page) -> tuple[list[BatchRecord], bool]:
        rows = await self._page("batches", BATCH_COLUMNS, scope, page)
        return [_batch(r) for r in rows[:page.limit]], len(rows) > page.limit

    async def transition(self, batch_id: str, expected: BatchStatus, target: BatchStatus, now: int,
                         changes: dict | None = None, new_files: Iterable[FileRecord] = (),
                         shards: Iterable[ShardSpan] = ()) -> bool:
        if not can_move(expected, target):
            raise ValueError(f"a batch cannot move from {expected.value} to {target.value}")
        changes = dict(changes or {})
        if set(changes) - TRANSITION_COLUMNS:
            raise ValueError(f"transition cannot set {set(changes) - TRANSITION_COLUMNS}")
        if "errors" in changes and changes["errors"] is not None:
            changes["errors"] = orjson.dumps(changes["errors"]).decode()
        stamp = timestamp_field(target)
        if stamp:
            changes[stamp] = now
        assignments = ", ".join(["status = ?", *(f"{c} = ?" for c in changes)])
        files, spans = list(new_files), list(shards)

        def apply(db: Db) -> bool:
            moved = db.execute(f"UPDATE batches SET {assignments} WHERE id = ? AND status = ?",
                               (target.value, *changes.values(), batch_id, expected.value)).rowcount == 1
            if moved:
                for file in files:
                    _insert_file(db, file)
                if spans:
                    db.executemany("INSERT INTO shards (batch_id, shard, first_line, last_line, start_offset) "
                                   "VALUES (?, ?, ?, ?, ?)",
                                   [(batch_id, n, s.first_line, s.last_line, s.offset) for n, s in enumerate(spans)])
                if target in TERMINAL:
                    db.execute("DELETE FROM shards WHERE batch_id = ?", (batch_id,))
                if target in (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.EXPIRED):
                    # The files now hold every result; the per-line rows have done their job.
                    db.execute("DELETE FROM results WHERE batch_id = ?", (batch_id,))
            return moved

        return await self._write(apply)

    async def batches_to_drive(self, now: float) -> list[str]:
        """Unleased batches with a step to take under the batch lease: validate, finalize, cancel, expire."""
        rows = await self._all(
            f"SELECT id FROM batches WHERE (status IN ({_DRIVEN}) OR (status = 'in_progress' AND expires_at <= ?)) "
            f"AND {FREE_LEASE} ORDER BY seq", (now, now))
        return [r[0] for r in rows]
