"""The queries that share work between workers: the batch lease, shard leases, and the results they fence.

Mixed into SqlStore (sql.py), which provides `_write`, `_all` and the row-lock fragments.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterable, Protocol, Sequence

from batchgate.domain.records import Usage
from batchgate.domain.status import BatchStatus
from batchgate.errors import LeaseLost
from batchgate.store.base import ResultRow, ShardLease

PAGE_ROWS = 2000
_LIVE = "lease_owner IS NOT NULL AND lease_expires_at >= ?"  # a shard someone is working on
FREE_LEASE = "(lease_owner IS NULL OR lease_expires_at < ?)"  # a shard anyone may claim
# Statuses in which a batch lease may be held (batches_by_status serves the lookup).
_LEASED = "'validating', 'in_progress', 'finalizing', 'cancelling'"
# A shard holding one of its batch's places: a window of its own, not one handed on to it.
_PLACE = f"done = 0 AND handed_on = 0 AND {_LIVE}"


class Db(Protocol):
    """The part of a DB-API connection the queries use."""

    def execute(self, sql: str, params: tuple | list = ()) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[tuple]) -> Any: ...


def _lease_lost(lease: ShardLease) -> LeaseLost:
    return LeaseLost(f"worker {lease.worker_id} no longer holds shard {lease.shard} of batch {lease.batch_id}")


class WorkQueries:
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

    # taking over the leases of a dead owner ----------------------------------------------------

    async def lease_owners(self, now: float) -> list[str]:
        """Every owner of a live batch or shard lease."""
        rows = await self._all(
            f"SELECT lease_owner FROM shards WHERE done = 0 AND {_LIVE} UNION "
            f"SELECT lease_owner FROM batches WHERE status IN ({_LEASED}) AND {_LIVE}", (now, now))
        return [owner for (owner,) in rows]

    async def expire_leases(self, owners: Sequence[str], now: float) -> None:
        """Let the live leases of `owners` lapse now, for anyone to claim (their owners are known to be gone)."""
        if not owners:
            return
        marks = ", ".join("?" * len(owners))

        def expire(db: Db) -> None:
            for table in ("shards", "batches"):
                db.execute(f"UPDATE {table} SET lease_expires_at = 0 WHERE lease_owner IN ({marks}) "
                           "AND lease_expires_at >= ?", (*owners, now))

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

    async def claim_shards(self, worker_id: str, now: float, lease_seconds: float, per_batch: int,
                           limit: int, skip: Sequence[str] = ()) -> list[ShardLease]:
        """Lease up to `limit` free shards of the least recently served batch (not in `skip`) that may run
        one more shard.

        A batch runs at most min(max_concurrency, per_batch) shards at once, and its max_concurrency
        is split among them, so its lines in flight never exceed max_concurrency. Its shards are
        taken in one transaction, so all of a new batch's lanes start together.
        """
        skipped = f"AND b.id NOT IN ({', '.join('?' * len(skip))})" if skip else ""

        def claim(db: Db) -> list[ShardLease]:
            candidate = db.execute(
                "SELECT b.id FROM batches b WHERE b.status = 'in_progress' AND b.sealed = 0 AND b.expires_at > ? "
                f"AND EXISTS (SELECT 1 FROM shards s WHERE s.batch_id = b.id AND s.done = 0 AND {FREE_LEASE}) "
                f"AND (SELECT count(*) FROM shards s WHERE s.batch_id = b.id AND {_PLACE}) "
                "< CASE WHEN b.max_concurrency < ? THEN b.max_concurrency ELSE ? END "  # min(), in both dialects
                f"{skipped} ORDER BY b.served_at, b.seq LIMIT 1", (now, now, now, per_batch, per_batch, *skip)).fetchone()
            leases: list[ShardLease] = []
            while candidate and len(leases) < limit and (
                    lease := self._claim_in(db, candidate[0], worker_id, now, lease_seconds, per_batch)):
                leases.append(lease)
            return leases

        return await self._write(claim)

    async def claim_successor(self, lease: ShardLease, now: float, lease_seconds: float,
                              per_batch: int) -> ShardLease | None:
        """Lease the next free shard of `lease`'s batch, for `lease`'s holder once it has sent every line.

        `lease`'s shard then only awaits its last answers and gives its place to the successor,
        which its holder feeds through the same window: the batch's lines in flight stay within
        max_concurrency. With no successor to take, the shard keeps its place.
        """
        def claim(db: Db) -> ShardLease | None:
            if db.execute(f"UPDATE shards SET handed_on = 1 WHERE batch_id = ? AND shard = ? AND lease_owner = ? "
                          f"AND {_PLACE}", (lease.batch_id, lease.shard, lease.worker_id, now)).rowcount != 1:
                return None  # finished, or taken over meanwhile: no longer ours to hand on
            successor = self._claim_in(db, lease.batch_id, lease.worker_id, now, lease_seconds, per_batch)
            if successor is None:
                db.execute("UPDATE shards SET handed_on = 0 WHERE batch_id = ? AND shard = ?",
                           (lease.batch_id, lease.shard))
            return successor

        return await self._write(claim)

    def _claim_in(self, db: Db, batch_id: str, worker_id: str, now: float, lease_seconds: float,
                  per_batch: int) -> ShardLease | None:
        # Counted again once the batch row is ours (claimers of one batch queue on it for a moment),
        # so two claimers cannot both take its last place.
        if db.execute(f"SELECT id FROM batches WHERE id = ? AND status = 'in_progress' AND sealed = 0"
                      f"{self.LOCK_BATCH}", (batch_id,)).fetchone() is None:
            return None
        concurrency, shards, places = db.execute(
            "SELECT max_concurrency, (SELECT count(*) FROM shards WHERE batch_id = ?), "
            f"(SELECT count(*) FROM shards WHERE batch_id = ? AND {_PLACE}) FROM batches WHERE id = ?",
            (batch_id, batch_id, now, batch_id)).fetchone()
        parallel = max(1, min(concurrency, per_batch, shards))
        if places >= parallel:
            return None
        row = db.execute(f"SELECT shard, first_line, last_line, start_offset FROM shards WHERE batch_id = ? "
                         f"AND done = 0 AND {FREE_LEASE} ORDER BY shard LIMIT 1{self.LOCK_SHARD}",
                         (batch_id, now)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE shards SET lease_owner = ?, lease_expires_at = ?, handed_on = 0 "
                   "WHERE batch_id = ? AND shard = ?", (worker_id, now + lease_seconds, batch_id, row[0]))
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
