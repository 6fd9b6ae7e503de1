"""SQLite metadata store: WAL, one connection on one thread, grouped commits."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import orjson

from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.requests import Page
from batchgate.domain.status import ACTIVE, BatchStatus, can_move, timestamp_field
from batchgate.errors import ConfigError, Conflict, LeaseLost
from batchgate.store.base import KeyRecord, ResultRow
from batchgate.store.migrations import migration_scripts

T = TypeVar("T")
PAGE_ROWS = 2000

FILE_COLUMNS = "id, owner, on_behalf_of, filename, purpose, bytes, sha256, storage_key, created_at, expires_at"
BATCH_COLUMNS = (
    "id, owner, on_behalf_of, endpoint, input_file_id, completion_window, status, created_at, expires_at, "
    "max_concurrency, metadata, output_expires_seconds, output_file_id, error_file_id, errors, in_progress_at, "
    "finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, total, completed, failed, "
    "input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, model"
)
_ACTIVE = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))  # an SQL list of the unfinished statuses
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


class SqliteStore:
    def __init__(self, path: str):
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, url: str) -> "SqliteStore":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ConfigError(f"database url {url!r} names no file")
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=ON")
        self._db = db
        self._migrate()

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            applied = {v for (v,) in db.execute("SELECT version FROM schema_migrations")}
            for version, script in migration_scripts():
                if version not in applied:
                    for statement in filter(str.strip, script.split(";")):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._tx, fn)

    async def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        return await self._run(lambda: self._db.execute(sql, params).fetchall())

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

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

    async def insert_file(self, file: FileRecord) -> None:
        await self._write(lambda db: _insert_file(db, file))

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
        def delete(db: sqlite3.Connection) -> FileRecord | None:
            row = db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                return None
            # Checked in the same transaction as the delete, so no batch can start using it in between.
            user = db.execute(f"SELECT id FROM batches WHERE status IN ({_ACTIVE}) AND input_file_id = ? LIMIT 1",
                              (file_id,)).fetchone()
            if user is not None:
                raise Conflict(f"File {file_id} is in use by batch {user[0]}, which has not finished; "
                               f"cancel it first.", param="file_id", code="file_in_use")
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            return _file(row)

        return await self._write(delete)

    async def expired_files(self, now: int, limit: int) -> list[FileRecord]:
        # A file some unfinished batch still reads or writes is kept alive until that batch ends.
        rows = await self._all(
            f"SELECT {FILE_COLUMNS} FROM files f WHERE expires_at IS NOT NULL AND expires_at <= ? "
            f"AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.status IN ({_ACTIVE}) "
            f"AND f.id IN (b.input_file_id, b.output_file_id, b.error_file_id)) LIMIT ?", (now, limit))
        return [_file(r) for r in rows]

    # batches ------------------------------------------------------------------------------

    async def insert_batch(self, batch: BatchRecord) -> None:
        await self._write(lambda db: db.execute(
            "INSERT INTO batches (id, owner, on_behalf_of, endpoint, input_file_id, completion_window, status, "
            "created_at, expires_at, max_concurrency, metadata, output_expires_seconds) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (batch.id, batch.scope.owner, batch.scope.on_behalf_of, batch.endpoint, batch.input_file_id,
             batch.completion_window, batch.status.value, batch.created_at, batch.expires_at, batch.max_concurrency,
             orjson.dumps(batch.metadata).decode() if batch.metadata is not None else None,
             batch.output_expires_seconds)))

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
                         changes: dict | None = None, new_files: Iterable[FileRecord] = ()) -> bool:
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
        files = list(new_files)

        def apply(db: sqlite3.Connection) -> bool:
            moved = db.execute(f"UPDATE batches SET {assignments} WHERE id = ? AND status = ?",
                               (target.value, *changes.values(), batch_id, expected.value)).rowcount == 1
            if moved:
                for file in files:
                    _insert_file(db, file)
                if target in (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.EXPIRED):
                    # The files now hold every result; the per-line rows have done their job.
                    db.execute("DELETE FROM results WHERE batch_id = ?", (batch_id,))
            return moved

        return await self._write(apply)

    async def active_batch_ids(self) -> list[str]:
        rows = await self._all(f"SELECT id FROM batches WHERE status IN ({_ACTIVE}) ORDER BY seq")
        return [r[0] for r in rows]

    # leases and results -------------------------------------------------------------------

    async def claim(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> bool:
        return await self._write(lambda db: db.execute(
            "UPDATE batches SET lease_owner = ?, lease_expires_at = ? WHERE id = ? "
            "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
            (worker_id, now + lease_seconds, batch_id, worker_id, now)).rowcount == 1)

    async def renew(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> BatchStatus:
        def renew(db: sqlite3.Connection) -> BatchStatus:
            row = db.execute("UPDATE batches SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? "
                             "RETURNING status", (now + lease_seconds, batch_id, worker_id)).fetchone()
            if row is None:
                raise LeaseLost(f"worker {worker_id} no longer holds batch {batch_id}")
            return BatchStatus(row[0])

        return await self._write(renew)

    async def release(self, batch_id: str, worker_id: str) -> None:
        await self._write(lambda db: db.execute(
            "UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
            (batch_id, worker_id)))

    async def record_results(self, batch_id: str, worker_id: str, rows: list[ResultRow], usage: Usage) -> None:
        def record(db: sqlite3.Connection) -> None:
            holder = db.execute("SELECT lease_owner FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if holder is None or holder[0] != worker_id:
                raise LeaseLost(f"worker {worker_id} no longer holds batch {batch_id}")
            # OR IGNORE: a row already recorded is the truth; a late duplicate must not count twice.
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO results (batch_id, line, ok, record) VALUES (?, ?, ?, ?)",
                           [(batch_id, r.line, int(r.ok), r.record) for r in rows])
            if db.total_changes - before != len(rows):
                raise LeaseLost(f"batch {batch_id}: results were already recorded by another worker")
            ok = sum(1 for r in rows if r.ok)
            db.execute(
                "UPDATE batches SET completed = completed + ?, failed = failed + ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, total_tokens = total_tokens + ?, "
                "cached_tokens = cached_tokens + ?, reasoning_tokens = reasoning_tokens + ? WHERE id = ?",
                (ok, len(rows) - ok, *usage.astuple(), batch_id))

        await self._write(record)

    async def done_lines(self, batch_id: str) -> AsyncIterator[int]:
        last = -1
        while True:
            rows = await self._all("SELECT line FROM results WHERE batch_id = ? AND line > ? ORDER BY line LIMIT ?",
                                   (batch_id, last, PAGE_ROWS))
            for (line,) in rows:
                yield line
            if len(rows) < PAGE_ROWS:
                return
            last = rows[-1][0]

    async def results(self, batch_id: str) -> AsyncIterator[ResultRow]:
        last = -1
        while True:
            rows = await self._all("SELECT line, ok, record FROM results WHERE batch_id = ? AND line > ? "
                                   "ORDER BY line LIMIT ?", (batch_id, last, PAGE_ROWS))
            for line, ok, record in rows:
                yield ResultRow(line, bool(ok), record)
            if len(rows) < PAGE_ROWS:
                return
            last = rows[-1][0]


def _insert_file(db: sqlite3.Connection, file: FileRecord) -> None:
    db.execute(
        f"INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (file.id, file.scope.owner, file.scope.on_behalf_of, file.filename, file.purpose, file.bytes, file.sha256,
         file.storage_key, file.created_at, file.expires_at))
