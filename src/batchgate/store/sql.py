"""The metadata store's logic, written once for every SQL backend.

Each operation is a plain function of a DB-API connection (`?` placeholders), run on a
thread by the backend (sqlite.py, postgresql.py), inside one transaction when it writes.
Where the dialects differ (row locks), the backend supplies the fragment.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterable, Protocol, TypeVar

import orjson

from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.requests import Page
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import ACTIVE, TERMINAL, BatchStatus, can_move, timestamp_field
from batchgate.errors import Conflict, LeaseLost
from batchgate.store.base import KeyRecord, ResultRow, ShardLease

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
# Statuses a worker drives under the batch lease; in_progress is worked on shard by shard instead.
_DRIVEN = "'validating', 'finalizing', 'cancelling'"
# Columns a status transition may set besides the status and its timestamp.
TRANSITION_COLUMNS = frozenset({"total", "failed", "errors", "output_file_id", "error_file_id", "model"})
_LIVE = "lease_owner IS NOT NULL AND lease_expires_at >= ?"  # a shard someone is working on
_FREE = "(lease_owner IS NULL OR lease_expires_at < ?)"  # a shard anyone may claim


class Db(Protocol):
    """The part of a DB-API connection the queries use."""

    def execute(self, sql: str, params: tuple | list = ()) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[tuple]) -> Any: ...


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


def _lease_lost(lease: ShardLease) -> LeaseLost:
    return LeaseLost(f"worker {lease.worker_id} no longer holds shard {lease.shard} of batch {lease.batch_id}")


class SqlStore:
    """Every Store operation; subclasses provide `_write`, `_read` and the row-lock fragments."""

    # Row locks, appended to queries: on the batch row a claimer or finisher works on, on the shard a
    # claimer picks (others skip it), and on the shard a result commit is fenced by.
    LOCK_BATCH = ""
    LOCK_SHARD = ""
    FENCE_SHARD = ""

    async def _write(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

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
        def delete(db: Db) -> FileRecord | None:
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
            f"AND {_FREE} ORDER BY seq", (now, now))
        return [r[0] for r in rows]

    # the batch lease: validating, finalizing, cancelling and expiring, one worker at a time ----------

    async def claim(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> bool:
        return await self._write(lambda db: db.execute(
            "UPDATE batches SET lease_owner = ?, lease_expires_at = ? WHERE id = ? "
            "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
            (worker_id, now + lease_seconds, batch_id, worker_id, now)).rowcount == 1)

    async def renew(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> BatchStatus:
        def renew(db: Db) -> BatchStatus:
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

    async def seal(self, batch_id: str) -> None:
        """From now on no result of `batch_id` is recorded: its counts are final for a cancel or expiry."""
        await self._write(lambda db: db.execute("UPDATE batches SET sealed = 1 WHERE id = ?", (batch_id,)))

    async def live_shards(self, batch_id: str, now: float) -> int:
        rows = await self._all(f"SELECT count(*) FROM shards WHERE batch_id = ? AND done = 0 AND {_LIVE}",
                               (batch_id, now))
        return rows[0][0]

    # shard leases: in_progress batches, worked on by every worker at once ---------------------

    async def claim_shard(self, worker_id: str, now: float, lease_seconds: float,
                          per_batch: int) -> ShardLease | None:
        """Lease the first free shard of the least recently served batch that may run one more shard.

        A batch runs at most min(max_concurrency, per_batch) shards at once, and its max_concurrency
        is split among them, so its lines in flight never exceed max_concurrency.
        """
        def claim(db: Db) -> ShardLease | None:
            candidate = db.execute(
                "SELECT b.id FROM batches b WHERE b.status = 'in_progress' AND b.sealed = 0 AND b.expires_at > ? "
                f"AND EXISTS (SELECT 1 FROM shards s WHERE s.batch_id = b.id AND s.done = 0 AND {_FREE}) "
                f"AND (SELECT count(*) FROM shards s WHERE s.batch_id = b.id AND s.done = 0 AND {_LIVE}) "
                "< b.max_concurrency AND (SELECT count(*) FROM shards s WHERE s.batch_id = b.id AND s.done = 0 "
                f"AND {_LIVE}) < ? ORDER BY b.served_at, b.seq LIMIT 1", (now, now, now, now, per_batch)).fetchone()
            return candidate and self._claim_in(db, candidate[0], worker_id, now, lease_seconds, per_batch)

        return await self._write(claim)

    def _claim_in(self, db: Db, batch_id: str, worker_id: str, now: float, lease_seconds: float,
                  per_batch: int) -> ShardLease | None:
        # Counted again once the batch row is ours (claimers of one batch queue on it for a moment),
        # so two claimers cannot both take its last place.
        if db.execute(f"SELECT id FROM batches WHERE id = ? AND status = 'in_progress' AND sealed = 0"
                      f"{self.LOCK_BATCH}", (batch_id,)).fetchone() is None:
            return None
        concurrency, shards, live = db.execute(
            "SELECT max_concurrency, (SELECT count(*) FROM shards WHERE batch_id = ?), "
            f"(SELECT count(*) FROM shards WHERE batch_id = ? AND done = 0 AND {_LIVE}) FROM batches WHERE id = ?",
            (batch_id, batch_id, now, batch_id)).fetchone()
        parallel = max(1, min(concurrency, per_batch, shards))
        if live >= parallel:
            return None
        row = db.execute(f"SELECT shard, first_line, last_line, start_offset FROM shards WHERE batch_id = ? "
                         f"AND done = 0 AND {_FREE} ORDER BY shard LIMIT 1{self.LOCK_SHARD}",
                         (batch_id, now)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE shards SET lease_owner = ?, lease_expires_at = ? WHERE batch_id = ? AND shard = ?",
                   (worker_id, now + lease_seconds, batch_id, row[0]))
        db.execute("UPDATE batches SET served_at = ? WHERE id = ?", (now, batch_id))
        return ShardLease(batch_id, row[0], worker_id, row[1], row[2], row[3], concurrency // parallel)

    async def renew_shard(self, lease: ShardLease, now: float, lease_seconds: float) -> BatchStatus:
        def renew(db: Db) -> BatchStatus:
            if db.execute("UPDATE shards SET lease_expires_at = ? WHERE batch_id = ? AND shard = ? "
                          "AND lease_owner = ? AND done = 0",
                          (now + lease_seconds, lease.batch_id, lease.shard, lease.worker_id)).rowcount != 1:
                raise _lease_lost(lease)
            status, sealed = db.execute("SELECT status, sealed FROM batches WHERE id = ?",
                                        (lease.batch_id,)).fetchone()
            if sealed:
                raise _lease_lost(lease)
            return BatchStatus(status)

        return await self._write(renew)

    async def release_shard(self, lease: ShardLease) -> None:
        await self._write(lambda db: db.execute(
            "UPDATE shards SET lease_owner = NULL, lease_expires_at = NULL WHERE batch_id = ? AND shard = ? "
            "AND lease_owner = ?", (lease.batch_id, lease.shard, lease.worker_id)))

    async def finish_shard(self, lease: ShardLease, now: int) -> bool:
        """Mark the shard done; whoever finishes the last one moves the batch to finalizing (True)."""
        def finish(db: Db) -> bool:
            # The batch row first: finishers of one batch queue here, so the last one sees all the others.
            db.execute(f"SELECT id FROM batches WHERE id = ?{self.LOCK_BATCH}", (lease.batch_id,))
            if db.execute("UPDATE shards SET done = 1, lease_owner = NULL, lease_expires_at = NULL "
                          "WHERE batch_id = ? AND shard = ? AND lease_owner = ? AND done = 0",
                          (lease.batch_id, lease.shard, lease.worker_id)).rowcount != 1:
                raise _lease_lost(lease)
            left = db.execute("SELECT count(*) FROM shards WHERE batch_id = ? AND done = 0",
                              (lease.batch_id,)).fetchone()[0]
            return left == 0 and db.execute(
                "UPDATE batches SET status = 'finalizing', finalizing_at = ? "
                "WHERE id = ? AND status = 'in_progress' AND sealed = 0", (now, lease.batch_id)).rowcount == 1

        return await self._write(finish)

    async def record_results(self, lease: ShardLease, rows: list[ResultRow], usage: Usage) -> None:
        def record(db: Db) -> None:
            if db.execute(f"SELECT 1 FROM shards WHERE batch_id = ? AND shard = ? AND lease_owner = ? "
                          f"AND done = 0{self.FENCE_SHARD}",
                          (lease.batch_id, lease.shard, lease.worker_id)).fetchone() is None:
                raise _lease_lost(lease)
            # DO NOTHING: a row already recorded is the truth; a late duplicate must not count twice.
            inserted = db.executemany(
                "INSERT INTO results (batch_id, line, ok, record) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(lease.batch_id, r.line, int(r.ok), r.record) for r in rows]).rowcount
            if inserted != len(rows):
                raise LeaseLost(f"batch {lease.batch_id}: results were already recorded by another worker")
            ok = sum(1 for r in rows if r.ok)
            # sealed = 0 is checked on the row as it is now: a seal that won the race rolls all of this back.
            if db.execute(
                    "UPDATE batches SET completed = completed + ?, failed = failed + ?, "
                    "input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
                    "total_tokens = total_tokens + ?, cached_tokens = cached_tokens + ?, "
                    "reasoning_tokens = reasoning_tokens + ? WHERE id = ? AND sealed = 0",
                    (ok, len(rows) - ok, *usage.astuple(), lease.batch_id)).rowcount != 1:
                raise _lease_lost(lease)

        await self._write(record)

    async def done_lines(self, batch_id: str, first: int = 1, last: int | None = None) -> AsyncIterator[int]:
        """Recorded lines of `batch_id` between `first` and `last`, in order."""
        after, last = first - 1, last if last is not None else 2**62
        while True:
            rows = await self._all("SELECT line FROM results WHERE batch_id = ? AND line > ? AND line <= ? "
                                   "ORDER BY line LIMIT ?", (batch_id, after, last, PAGE_ROWS))
            for (line,) in rows:
                yield line
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]

    async def results(self, batch_id: str) -> AsyncIterator[ResultRow]:
        last = -1
        while True:
            rows = await self._all("SELECT line, ok, record FROM results WHERE batch_id = ? AND line > ? "
                                   "ORDER BY line LIMIT ?", (batch_id, last, PAGE_ROWS))
            for line, ok, record in rows:
                yield ResultRow(line, bool(ok), bytes(record))
            if len(rows) < PAGE_ROWS:
                return
            last = rows[-1][0]
