"""The operations that share work between workers: the batch lease, shard leases, and the results they fence.

SqlStore (sql.py) builds on these; a backend (sqlite.py, postgresql.py) provides `_write`, `_read`
and its catalogue `Q`, as declared by SqlBase.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from batchgate.domain.records import Usage
from batchgate.domain.status import BatchStatus
from batchgate.errors import LeaseLost
from batchgate.store.base import ResultRow, ShardLease
from batchgate.store.queries import Catalogue
from batchgate.store.rows import USAGE_COLUMNS, result_of, result_params, shard_lease_of

PAGE_ROWS = 2000
DONE_AMONG_LINES = 500  # lines asked about per statement: well under every driver's parameter limit
T = TypeVar("T")


class Db(Protocol):
    """The part of a DB-API connection the operations use."""

    def execute(self, sql: str, params: dict[str, Any] | tuple = ()) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[dict[str, Any]]) -> Any: ...


def _lease_lost(lease: ShardLease) -> LeaseLost:
    return LeaseLost(f"worker {lease.worker_id} no longer holds shard {lease.shard} of batch {lease.batch_id}")


def _holder(lease: ShardLease) -> dict[str, Any]:
    """The parameters naming `lease`'s shard row and its holder."""
    return {"batch_id": lease.batch_id, "shard": lease.shard, "worker_id": lease.worker_id}


class SqlBase:
    """What every SQL operation runs on; a backend provides `_write`, `_read` and its catalogue `Q`."""

    Q: Catalogue  # the backend's statements, with its row-lock fragments and parameter style

    async def _write(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Db], T]) -> T:
        raise NotImplementedError

    async def _write_freeing_space(self, fn: Callable[[Db], T]) -> T:
        """A write that frees space (a file delete); a backend that keeps room aside for it uses it here."""
        return await self._write(fn)

    async def _all(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self._read(lambda db: db.execute(sql, params).fetchall())


class WorkQueries(SqlBase):
    # the batch lease: validating, finalizing, cancelling and expiring, one worker at a time ----------

    async def claim(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> bool:
        params = {"id": batch_id, "worker_id": worker_id, "until": now + lease_seconds, "now": now}
        return await self._write(lambda db: db.execute(self.Q["claim_batch"], params).rowcount == 1)

    async def renew(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> BatchStatus:
        def renew(db: Db) -> BatchStatus:
            row = db.execute(
                self.Q["renew_batch"], {"id": batch_id, "worker_id": worker_id, "until": now + lease_seconds}
            ).fetchone()
            if row is None:
                raise LeaseLost(f"worker {worker_id} no longer holds batch {batch_id}")
            return BatchStatus(row[0])

        return await self._write(renew)

    async def release(self, batch_id: str, worker_id: str) -> None:
        await self._write(lambda db: db.execute(self.Q["release_batch"], {"id": batch_id, "worker_id": worker_id}))

    async def seal(self, batch_id: str) -> None:
        """From now on no result of `batch_id` is recorded: its counts are final for a cancel or expiry."""
        await self._write(lambda db: db.execute(self.Q["seal"], {"id": batch_id}))

    async def live_shards(self, batch_id: str, now: float) -> int:
        rows = await self._all(self.Q["live_shards"], {"batch_id": batch_id, "now": now})
        return rows[0][0]

    # taking over the leases of a dead owner ----------------------------------------------------

    async def lease_owners(self, now: float) -> list[str]:
        """Every owner of a live batch or shard lease."""
        return [owner for (owner,) in await self._all(self.Q["lease_owners"], {"now": now})]

    async def expire_leases(self, owners: Sequence[str], now: float) -> None:
        """Let the live leases of `owners` lapse now, for anyone to claim (their owners are known to be gone)."""
        if not owners:
            return
        marks, params = self.Q.in_list("owner", owners)
        params["now"] = now
        statements = [self.Q.compose(name, owners=marks) for name in ("expire_shard_leases", "expire_batch_leases")]

        def expire(db: Db) -> None:
            for sql in statements:
                db.execute(sql, params)

        await self._write(expire)

    # sessions: a store without them (SQLite) judges owners by their process alone ----------

    async def hold_session(self, worker_id: str, now: float) -> None:
        return None

    async def prove_session(self, worker_id: str, now: float) -> bool:
        return True

    def session_proven_at(self, worker_id: str) -> float | None:
        return float("inf")

    async def ended_sessions(self, owners: Sequence[str]) -> list[str]:
        return []

    # shard leases: in_progress batches, worked on by every worker at once ---------------------

    async def claim_shards(
        self, worker_id: str, now: float, lease_seconds: float, per_batch: int, limit: int, skip: Sequence[str] = ()
    ) -> list[ShardLease]:
        """Lease up to `limit` free shards of the least recently served batch (not in `skip`) that may run
        one more shard.

        A batch runs at most min(max_concurrency, per_batch) shards at once, and its max_concurrency
        is split among them, so its lines in flight never exceed max_concurrency. Its shards are
        taken in one transaction, so all of a new batch's lanes start together.
        """
        marks, params = self.Q.in_list("skip", skip)
        sql = self.Q.compose("claim_candidate", skip=f"AND b.id NOT IN ({marks})" if skip else "")
        params.update(now=now, per_batch=per_batch)

        def claim(db: Db) -> list[ShardLease]:
            candidate = db.execute(sql, params).fetchone()
            leases: list[ShardLease] = []
            while (
                candidate
                and len(leases) < limit
                and (lease := self._claim_in(db, candidate[0], worker_id, now, lease_seconds, per_batch))
            ):
                leases.append(lease)
            return leases

        return await self._write(claim)

    async def claim_successor(
        self, lease: ShardLease, now: float, lease_seconds: float, per_batch: int
    ) -> ShardLease | None:
        """Lease the next free shard of `lease`'s batch, for `lease`'s holder once it has sent every line.

        `lease`'s shard then only awaits its last answers and gives its place to the successor,
        which its holder feeds through the same window: the batch's lines in flight stay within
        max_concurrency. With no successor to take, the shard keeps its place.
        """

        def claim(db: Db) -> ShardLease | None:
            if db.execute(self.Q["hand_on_shard"], {**_holder(lease), "now": now}).rowcount != 1:
                return None  # finished, or taken over meanwhile: no longer ours to hand on
            successor = self._claim_in(db, lease.batch_id, lease.worker_id, now, lease_seconds, per_batch)
            if successor is None:
                db.execute(self.Q["keep_place"], {"batch_id": lease.batch_id, "shard": lease.shard})
            return successor

        return await self._write(claim)

    def _claim_in(
        self, db: Db, batch_id: str, worker_id: str, now: float, lease_seconds: float, per_batch: int
    ) -> ShardLease | None:
        # Counted again once the batch row is ours (claimers of one batch queue on it for a moment),
        # so two claimers cannot both take its last place.
        batch = {"batch_id": batch_id, "now": now}
        if db.execute(self.Q["lock_running_batch"], batch).fetchone() is None:
            return None
        concurrency, shards, places = db.execute(self.Q["batch_places"], batch).fetchone()
        parallel = max(1, min(concurrency, per_batch, shards))
        if places >= parallel:
            return None
        row = db.execute(self.Q["free_shard"], batch).fetchone()
        if row is None:
            return None
        lease = shard_lease_of(row, batch_id, worker_id, concurrency // parallel)
        db.execute(self.Q["lease_shard"], {**_holder(lease), "until": now + lease_seconds})
        db.execute(self.Q["serve_batch"], batch)
        return lease

    async def renew_shard(self, lease: ShardLease, now: float, lease_seconds: float) -> BatchStatus:
        def renew(db: Db) -> BatchStatus:
            if db.execute(self.Q["renew_shard"], {**_holder(lease), "until": now + lease_seconds}).rowcount != 1:
                raise _lease_lost(lease)
            status, sealed = db.execute(self.Q["batch_status"], {"batch_id": lease.batch_id}).fetchone()
            if sealed:
                raise _lease_lost(lease)
            return BatchStatus(status)

        return await self._write(renew)

    async def release_shard(self, lease: ShardLease) -> None:
        await self._write(lambda db: db.execute(self.Q["release_shard"], _holder(lease)))

    async def finish_shard(self, lease: ShardLease, now: int) -> bool:
        """Mark the shard done; whoever finishes the last one moves the batch to finalizing (True)."""
        batch = {"batch_id": lease.batch_id}

        def finish(db: Db) -> bool:
            db.execute(self.Q["lock_batch"], batch)
            if db.execute(self.Q["finish_shard"], _holder(lease)).rowcount != 1:
                raise _lease_lost(lease)
            left = db.execute(self.Q["open_shards"], batch).fetchone()[0]
            return left == 0 and db.execute(self.Q["finalize"], {**batch, "now": now}).rowcount == 1

        return await self._write(finish)

    async def record_results(self, lease: ShardLease, rows: list[ResultRow], usage: Usage, copies: int = 0) -> None:
        def record(db: Db) -> None:
            if db.execute(self.Q["fence_shard"], _holder(lease)).fetchone() is None:
                raise _lease_lost(lease)
            if db.executemany(self.Q["insert_result"], result_params(lease.batch_id, rows)).rowcount != len(rows):
                raise LeaseLost(f"batch {lease.batch_id}: results were already recorded by another worker")
            ok = sum(1 for row in rows if row.ok)
            counts = {
                "batch_id": lease.batch_id,
                "completed": ok,
                "failed": len(rows) - ok,
                "duplicates_saved": copies,
                **dict(zip(USAGE_COLUMNS, usage.astuple(), strict=True)),
            }
            if db.execute(self.Q["count_results"], counts).rowcount != 1:
                raise _lease_lost(lease)

        await self._write(record)

    async def done_lines(self, batch_id: str, first: int = 1, last: int | None = None) -> AsyncIterator[int]:
        """Recorded lines of `batch_id` between `first` and `last`, in order."""
        params = {
            "batch_id": batch_id,
            "after": first - 1,
            "last": last if last is not None else 2**62,
            "limit": PAGE_ROWS,
        }
        while True:
            rows = await self._all(self.Q["done_lines"], params)
            for (line,) in rows:
                yield line
            if len(rows) < PAGE_ROWS:
                return
            params = {**params, "after": rows[-1][0]}

    async def done_among(self, batch_id: str, lines: Sequence[int]) -> set[int]:
        done: set[int] = set()
        for start in range(0, len(lines), DONE_AMONG_LINES):
            marks, params = self.Q.in_list("line", lines[start : start + DONE_AMONG_LINES])
            rows = await self._all(self.Q.compose("done_among", lines=marks), {**params, "batch_id": batch_id})
            done.update(line for (line,) in rows)
        return done

    async def result_page(self, batch_id: str, after: int, limit: int) -> list[ResultRow]:
        """Up to `limit` recorded results of `batch_id` after line `after`, in line order."""
        rows = await self._all(self.Q["results_page"], {"batch_id": batch_id, "after": after, "limit": limit})
        return [result_of(row) for row in rows]

    async def lines_settled(self, batch_id: str, first: int, last: int) -> bool:
        """No line from `first` to `last` of a running batch will get a result it has not got yet: every
        shard they lie in is finished (a line in none of them is blank)."""
        params = {"batch_id": batch_id, "first": first, "last": last}
        return not await self._all(self.Q["unfinished_between"], params)

    async def results(self, batch_id: str) -> AsyncIterator[ResultRow]:
        params = {"batch_id": batch_id, "after": -1, "limit": PAGE_ROWS}
        while True:
            rows = await self._all(self.Q["results_page"], params)
            for row in rows:
                yield result_of(row)
            if len(rows) < PAGE_ROWS:
                return
            params = {**params, "after": rows[-1][0]}
