"""The metadata store: what every backend (SQLite, PostgreSQL) provides.

All status changes are compare-and-set (`UPDATE … WHERE status = :expected`), so two
actors racing on one batch never both win (invariant I6). A batch's validating,
finalizing, cancelling and expiring are done under a batch lease; its in_progress lines
under shard leases. Results are written by a shard's lease holder only, and never once
the batch is sealed: a worker whose lease was taken over gets LeaseLost (fencing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from batchgate.domain.file_check import FileSummary
from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.requests import Page
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import BatchStatus
from batchgate.domain.webhooks import Delivery, WebhookEndpoint


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    owner: str
    prefix: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class ResultRow:
    line: int
    ok: bool
    record: bytes


@dataclass(frozen=True, slots=True)
class ShardLease:
    """A worker's claim on one shard: lines first_line..last_line of a batch, starting at byte `offset`
    (of its dispatch copy, if the batch has one: then positions in the copy, not line numbers)."""

    batch_id: str
    shard: int
    worker_id: str
    first_line: int
    last_line: int
    offset: int
    window: int  # this shard's share of the batch's max_concurrency


class Store(Protocol):
    async def close(self) -> None: ...

    # keys
    async def create_key(self, key: KeyRecord, secret_hash: str) -> None: ...
    async def list_keys(self) -> list[KeyRecord]: ...
    async def revoke_key(self, id_or_name: str, now: int) -> int: ...
    async def owner_of_key(self, secret_hash: str) -> str | None: ...

    # files
    async def insert_file(self, file: FileRecord, summary: FileSummary | None = None) -> None:
        """Insert the file, with its upload's summary if it is a clean batch input file."""
        ...

    async def file_summary(self, file_id: str) -> FileSummary | None:
        """The upload's summary of a clean batch input file (deleted with the file); None if there is none."""
        ...

    async def get_file(self, scope: Scope, file_id: str) -> FileRecord | None: ...
    async def list_files(
        self, scope: Scope, page: Page, purpose: str | None, sha256: str | None
    ) -> tuple[list[FileRecord], bool]: ...
    async def delete_file(self, file_id: str) -> FileRecord | None:
        """Delete and return the file; None if absent (a concurrent delete won);
        Conflict if an unfinished batch reads it.

        Decided in one transaction with insert_batch: a batch and the delete of its input never both succeed."""
        ...

    async def expired_files(self, now: int, limit: int) -> list[FileRecord]: ...

    # batches
    async def ended_dispatch_copies(self, limit: int) -> list[tuple[str, str]]:
        """(batch id, blob key) of ended batches that still name a dispatch copy (docs/caching.md)."""
        ...

    async def forget_dispatch_copy(self, batch_id: str) -> None:
        """The batch's dispatch copy is deleted: it names none any more."""
        ...

    async def insert_batch(self, batch: BatchRecord) -> bool:
        """Insert the batch if its input file exists in its scope; False if it does not (it was just deleted)."""
        ...

    async def get_batch(self, batch_id: str, scope: Scope | None = None) -> BatchRecord | None: ...
    async def count_batches_by_status(self) -> dict[str, int]:
        """How many batches each status has (the metrics' batches gauge; served by an index)."""
        ...

    async def list_batches(self, scope: Scope, page: Page) -> tuple[list[BatchRecord], bool]: ...
    async def transition(
        self,
        batch_id: str,
        expected: BatchStatus,
        target: BatchStatus,
        now: int,
        changes: dict | None = None,
        new_files: Iterable[FileRecord] = (),
        shards: Iterable[ShardSpan] = (),
    ) -> bool: ...
    async def batches_to_drive(self, now: float) -> list[str]: ...

    # the batch lease
    async def claim(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> bool: ...
    async def renew(self, batch_id: str, worker_id: str, now: float, lease_seconds: float) -> BatchStatus: ...
    async def release(self, batch_id: str, worker_id: str) -> None: ...
    async def seal(self, batch_id: str) -> None: ...
    async def live_shards(self, batch_id: str, now: float) -> int: ...

    # the leases of dead owners
    async def lease_owners(self, now: float) -> list[str]: ...
    async def expire_leases(self, owners: Sequence[str], now: float) -> None: ...

    # a worker's session (PostgreSQL): proof that it lives, seen by the others; a store without
    # sessions proves every worker forever (inf) and reports no session ended
    async def hold_session(self, worker_id: str, now: float) -> None: ...
    async def prove_session(self, worker_id: str, now: float) -> bool: ...
    def session_proven_at(self, worker_id: str) -> float | None: ...
    async def ended_sessions(self, owners: Sequence[str]) -> list[str]: ...

    # shard leases and results
    async def claim_shards(
        self, worker_id: str, now: float, lease_seconds: float, per_batch: int, limit: int, skip: Sequence[str] = ()
    ) -> list[ShardLease]: ...
    async def claim_successor(
        self, lease: ShardLease, now: float, lease_seconds: float, per_batch: int
    ) -> ShardLease | None: ...
    async def renew_shard(self, lease: ShardLease, now: float, lease_seconds: float) -> BatchStatus: ...
    async def release_shard(self, lease: ShardLease) -> None: ...
    async def finish_shard(self, lease: ShardLease, now: int) -> bool: ...
    async def record_results(self, lease: ShardLease, rows: list[ResultRow], usage: Usage, copies: int = 0) -> None:
        """Insert `rows` and add them, their `usage` and the `copies` among them (repeats answered once) to the
        batch's counts, in one transaction fenced by the lease."""
        ...

    def done_lines(self, batch_id: str, first: int = 1, last: int | None = None) -> AsyncIterator[int]: ...
    async def done_among(self, batch_id: str, lines: Sequence[int]) -> set[int]:
        """Which of `lines` of `batch_id` have a recorded result."""
        ...

    def results(self, batch_id: str) -> AsyncIterator[ResultRow]: ...
    async def result_page(self, batch_id: str, after: int, limit: int) -> list[ResultRow]:
        """Up to `limit` recorded results after line `after`, in line order (the rows are gone once the
        batch has ended in one of RESULTS_IN_FILES)."""
        ...

    async def lines_settled(self, batch_id: str, first: int, last: int) -> bool:
        """Every shard holding a line from `first` to `last` is finished: those lines not recorded are blank."""
        ...

    # webhooks: endpoints per scope, and the outbox a batch's terminal transition writes
    async def insert_webhook(self, endpoint: WebhookEndpoint) -> None: ...
    async def list_webhooks(self, scope: Scope) -> list[WebhookEndpoint]: ...
    async def delete_webhook(self, scope: Scope, endpoint_id: str) -> bool: ...
    async def claim_deliveries(
        self, worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[Delivery]: ...
    async def settle_delivery(
        self, delivery: Delivery, worker_id: str, next_attempt_at: float | None, last_error: str | None
    ) -> bool: ...
    async def sweep_events(self, before: float) -> int: ...
