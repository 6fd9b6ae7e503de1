"""The metadata store's logic, written once for every SQL backend.

Each operation is a plain function of a DB-API connection, run on a thread by the backend
(sqlite.py, postgresql.py), inside one transaction when it writes. It runs the statements of
the backend's catalogue (queries.py) by name, with dicts of named parameters, and turns rows
into records by column name (rows.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from batchgate import ids
from batchgate.domain.file_check import FileSummary
from batchgate.domain.records import BatchRecord, FileRecord, Scope
from batchgate.domain.requests import Page
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import RESULTS_IN_FILES, TERMINAL, BatchStatus, can_move, timestamp_field
from batchgate.domain.webhooks import EVENT_OF_STATUS
from batchgate.errors import Conflict
from batchgate.store import rows as r
from batchgate.store.base import KeyRecord
from batchgate.store.sql_webhooks import WebhookQueries
from batchgate.store.sql_work import PAGE_ROWS, Db, WorkQueries

T = TypeVar("T")
__all__ = ["PAGE_ROWS", "Db", "SqlStore"]
PAGE_FILTERS = ("purpose", "sha256")  # the columns a files page may be filtered by


def _scope(scope: Scope) -> dict[str, str]:
    return {"owner": scope.owner, "on_behalf_of": scope.on_behalf_of}


class SqlStore(WorkQueries, WebhookQueries):
    """Every Store operation; a backend provides `_write`, `_read` and its catalogue `Q` (see SqlBase)."""

    # keys ---------------------------------------------------------------------------------

    async def create_key(self, key: KeyRecord, secret_hash: str) -> None:
        await self._write(lambda db: db.execute(self.Q["insert_key"], r.key_params(key, secret_hash)))

    async def list_keys(self) -> list[KeyRecord]:
        return [r.key_of(row) for row in await self._all(self.Q["list_keys"])]

    async def revoke_key(self, id_or_name: str, now: int) -> int:
        return await self._write(lambda db: db.execute(self.Q["revoke_key"], {"now": now, "key": id_or_name}).rowcount)

    async def owner_of_key(self, secret_hash: str) -> str | None:
        rows = await self._all(self.Q["owner_of_key"], {"secret_hash": secret_hash})
        return rows[0][0] if rows else None

    # files --------------------------------------------------------------------------------

    async def insert_file(self, file: FileRecord, summary: FileSummary | None = None) -> None:
        def insert(db: Db) -> None:
            db.execute(self.Q["insert_file"], r.file_params(file))
            if summary is not None:
                db.execute(self.Q["insert_summary"], r.summary_params(file.id, summary))

        await self._write(insert)

    async def file_summary(self, file_id: str) -> FileSummary | None:
        rows = await self._all(self.Q["get_summary"], {"file_id": file_id})
        return r.summary_of(rows[0]) if rows else None

    async def get_file(self, scope: Scope, file_id: str) -> FileRecord | None:
        rows = await self._all(self.Q["get_file"], {"id": file_id, **_scope(scope)})
        return r.file_of(rows[0]) if rows else None

    async def list_files(
        self, scope: Scope, page: Page, purpose: str | None, sha256: str | None
    ) -> tuple[list[FileRecord], bool]:
        filters = {column: value for column, value in zip(PAGE_FILTERS, (purpose, sha256), strict=True) if value}
        rows = await self._page("files", scope, page, filters)
        return [r.file_of(row) for row in rows[: page.limit]], len(rows) > page.limit

    async def _page(self, table: str, scope: Scope, page: Page, filters: dict[str, str] | None = None) -> list[tuple]:
        """One page of `table` (page_files, page_batches) in the caller's scope, one row more than asked."""
        filters = filters or {}
        where = "".join(f" AND {column} = :{column}" for column in filters)
        if page.after:
            where += self.Q.template("page_after", cmp="<" if page.descending else ">", table=table)
        sql = self.Q.compose(f"page_{table}", where=where, order="DESC" if page.descending else "ASC")
        return await self._all(sql, {**_scope(scope), **filters, "after": page.after, "limit": page.limit + 1})

    async def delete_file(self, file_id: str) -> FileRecord | None:
        def delete(db: Db) -> FileRecord | None:
            row = db.execute(self.Q["lock_file"], {"id": file_id}).fetchone()
            if row is None:
                return None  # a concurrent delete won
            if db.execute(self.Q["delete_unused_file"], {"id": file_id}).rowcount == 0:
                user = db.execute(self.Q["unfinished_user"], {"id": file_id}).fetchone()
                raise Conflict(
                    f"File {file_id} is the input of batch {user[0]}, which has not finished; wait for it "
                    f"to end or cancel it, then delete the file.",
                    param="file_id",
                    code="file_in_use",
                )
            return r.file_of(row)

        return await self._write_freeing_space(delete)

    async def expired_files(self, now: int, limit: int) -> list[FileRecord]:
        rows = await self._all(self.Q["expired_files"], {"now": now, "limit": limit})
        return [r.file_of(row) for row in rows]

    # batches ------------------------------------------------------------------------------

    async def ended_dispatch_copies(self, limit: int) -> list[tuple[str, str]]:
        rows = await self._all(self.Q["ended_dispatch_copies"], {"limit": limit})
        return [(batch_id, key) for batch_id, key in rows]

    async def forget_dispatch_copy(self, batch_id: str) -> None:
        await self._write(lambda db: db.execute(self.Q["forget_dispatch_copy"], {"batch_id": batch_id}))

    async def insert_batch(self, batch: BatchRecord) -> bool:
        params = r.new_batch_params(batch)
        return await self._write(lambda db: db.execute(self.Q["insert_batch_if_file"], params).rowcount == 1)

    async def count_batches_by_status(self) -> dict[str, int]:
        return {status: count for status, count in await self._all(self.Q["count_batches_by_status"])}

    async def get_batch(self, batch_id: str, scope: Scope | None = None) -> BatchRecord | None:
        if scope is None:
            rows = await self._all(self.Q["get_batch"], {"id": batch_id})
        else:
            rows = await self._all(self.Q["get_batch_in_scope"], {"id": batch_id, **_scope(scope)})
        return r.batch_of(rows[0]) if rows else None

    async def list_batches(self, scope: Scope, page: Page) -> tuple[list[BatchRecord], bool]:
        rows = await self._page("batches", scope, page)
        return [r.batch_of(row) for row in rows[: page.limit]], len(rows) > page.limit

    async def transition(
        self,
        batch_id: str,
        expected: BatchStatus,
        target: BatchStatus,
        now: int,
        changes: dict | None = None,
        new_files: Iterable[FileRecord] = (),
        shards: Iterable[ShardSpan] = (),
    ) -> bool:
        if not can_move(expected, target):
            raise ValueError(f"a batch cannot move from {expected.value} to {target.value}")
        changes = r.transition_params(changes or {})
        stamp = timestamp_field(target)
        if stamp:
            changes[stamp] = now
        sql = self.Q.compose("transition", assignments="".join(f", {column} = :{column}" for column in changes))
        params = {**changes, "target": target.value, "id": batch_id, "expected": expected.value}
        files = [r.file_params(file) for file in new_files]
        spans = [r.shard_params(batch_id, n, span) for n, span in enumerate(shards)]
        event_type = EVENT_OF_STATUS.get(target)

        def apply(db: Db) -> bool:
            moved = db.execute(sql, params).rowcount == 1
            if moved:
                for file in files:
                    db.execute(self.Q["insert_file"], file)
                if spans:
                    db.executemany(self.Q["insert_shard"], spans)
                if target in TERMINAL:
                    db.execute(self.Q["delete_shards"], {"batch_id": batch_id})
                if event_type is not None:
                    # In this transaction: the webhook event exists exactly when the status change does.
                    self.outbox_event(db, batch_id, ids.new_id("evt_"), event_type, now)
                if target in RESULTS_IN_FILES:
                    # The files now hold every result; the per-line rows have done their job.
                    db.execute(self.Q["delete_results"], {"batch_id": batch_id})
            return moved

        return await self._write(apply)

    async def batches_to_drive(self, now: float) -> list[str]:
        """Unleased batches with a step to take under the batch lease: validate, finalize, cancel, expire."""
        return [row[0] for row in await self._all(self.Q["batches_to_drive"], {"now": now})]
