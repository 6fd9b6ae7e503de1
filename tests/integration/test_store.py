"""The metadata stores in-process, SQLite and PostgreSQL alike: migrations, compare-and-set transitions (I6),
batch and shard leases, fenced results (I3)."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

import batchgate.store
from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.requests import Page
from batchgate.domain.shards import ShardSpan
from batchgate.domain.status import BatchStatus as S
from batchgate.errors import Conflict, InsufficientStorage, LeaseLost, Unavailable
from batchgate.store import ResultRow, ShardLease, postgresql
from batchgate.store.migrations import migration_scripts
from batchgate.store.sql import PAGE_ROWS

ALICE = Scope("alice")
ALICE_FOR_X = Scope("alice", "x")
BOB = Scope("bob")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """An empty database of each kind."""
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "t.db")
    return request.getfixturevalue("postgres_server").database()


@pytest.fixture
async def store(store_url):
    opened = await batchgate.store.open_store(store_url)
    yield opened
    await opened.close()


def make_file(
    file_id: str,
    scope: Scope = ALICE,
    *,
    created_at: int = 1000,
    expires_at: int | None = 999_999,
    purpose: str = "batch",
) -> FileRecord:
    return FileRecord(file_id, scope, f"{file_id}.jsonl", purpose, 10, "0" * 64, file_id, created_at, expires_at)


def make_batch(
    batch_id: str,
    scope: Scope = ALICE,
    *,
    input_file_id: str = "file-in",
    created_at: int = 1000,
    status: S = S.VALIDATING,
) -> BatchRecord:
    return BatchRecord(
        batch_id, scope, "/v1/chat/completions", input_file_id, "24h", status, created_at, created_at + 86400, 8
    )


async def add_batch(store, batch: BatchRecord) -> None:
    """Insert `batch`, and its input file first unless it exists: a batch is only inserted beside its file."""
    if await store.get_file(batch.scope, batch.input_file_id) is None:
        await store.insert_file(make_file(batch.input_file_id, batch.scope))
    assert await store.insert_batch(batch)


def rows(*lines: int, ok: bool = True) -> list[ResultRow]:
    return [ResultRow(line, ok, b'{"line": %d}' % line) for line in lines]


async def claim_one(store, worker: str, now: float, lease_seconds: float, per_batch: int) -> ShardLease | None:
    leases = await store.claim_shards(worker, now, lease_seconds, per_batch, 1)
    return leases[0] if leases else None


async def started_batch(store, batch_id: str = "batch_1", worker: str = "w1", now: float = 1000.0) -> ShardLease:
    """A batch in in_progress, as one shard whose live lease `worker` holds."""
    await add_batch(store, make_batch(batch_id, created_at=int(now)))
    assert await store.transition(
        batch_id, S.VALIDATING, S.IN_PROGRESS, 1001, {"total": 10}, shards=[ShardSpan(1, 10**6, 0)]
    )
    lease = await claim_one(store, worker, now, 30, 8)
    assert lease is not None and lease.batch_id == batch_id
    return lease


# --- migrations -----------------------------------------------------------------------------------


async def test_migrations_are_idempotent_across_reopen(store_url):
    first = await batchgate.store.open_store(store_url)
    await first.insert_file(make_file("file-a"))
    await first.close()

    second = await batchgate.store.open_store(store_url)
    try:
        assert (await second.get_file(ALICE, "file-a")).filename == "file-a.jsonl"
        versions = [v for (v,) in await second._all("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await second.close()
    dialect = store_url.split(":", 1)[0]
    assert versions == [version for version, _ in migration_scripts(dialect)]
    assert len(versions) == len(set(versions)) >= 2


# --- transitions (I6) -----------------------------------------------------------------------------


async def test_transition_is_compare_and_set_and_stamps_its_timestamp(store):
    await add_batch(store, make_batch("batch_cas"))
    results = await asyncio.gather(
        store.transition("batch_cas", S.VALIDATING, S.IN_PROGRESS, 1111, {"total": 3}),
        store.transition("batch_cas", S.VALIDATING, S.CANCELLING, 2222),
    )
    assert sorted(results) == [False, True], "exactly one of two racing transitions wins"
    batch = await store.get_batch("batch_cas")
    if results[0]:
        assert batch.status is S.IN_PROGRESS and batch.in_progress_at == 1111 and batch.total == 3
        assert batch.cancelling_at is None
    else:
        assert batch.status is S.CANCELLING and batch.cancelling_at == 2222
        assert batch.in_progress_at is None and batch.total == 0

    # A stale expectation changes nothing at all, files included.
    before = await store.get_batch("batch_cas")
    assert not await store.transition(
        "batch_cas", S.VALIDATING, S.FAILED, 3333, {"errors": {"x": 1}}, [make_file("file-never")]
    )
    assert await store.get_batch("batch_cas") == before
    assert await store.get_file(ALICE, "file-never") is None


async def test_transition_is_compare_and_set_across_two_connections(store, store_url):
    """Two processes (two connections to one database) racing on many batches: one winner per batch."""
    other = await batchgate.store.open_store(store_url)
    try:
        ids = [f"batch_race{i}" for i in range(20)]
        for batch_id in ids:
            await add_batch(store, make_batch(batch_id))
        wins = await asyncio.gather(
            *(
                s.transition(b, S.VALIDATING, target, 1234)
                for b in ids
                for s, target in ((store, S.IN_PROGRESS), (other, S.CANCELLING))
            )
        )
        for i, batch_id in enumerate(ids):
            mine, theirs = wins[2 * i], wins[2 * i + 1]
            assert mine != theirs, f"{batch_id}: both or neither transition won"
            batch = await other.get_batch(batch_id)
            assert batch.status is (S.IN_PROGRESS if mine else S.CANCELLING)
    finally:
        await other.close()


async def test_batches_are_counted_by_status_across_scopes(store):
    assert await store.count_batches_by_status() == {}
    await add_batch(store, make_batch("batch_bob", scope=Scope("bob", ""), input_file_id="file-bob"))
    for index in range(2):
        await add_batch(store, make_batch(f"batch_v{index}"))
    await add_batch(store, make_batch("batch_p"))
    assert await store.transition("batch_p", S.VALIDATING, S.IN_PROGRESS, 1001, {"total": 1})
    assert await store.count_batches_by_status() == {"validating": 3, "in_progress": 1}


async def test_transition_writes_new_files_with_the_status_change(store):
    await started_batch(store, "batch_f")
    assert await store.transition("batch_f", S.IN_PROGRESS, S.FINALIZING, 1500)
    out = make_file("file-out", purpose="batch_output")
    assert await store.transition(
        "batch_f", S.FINALIZING, S.COMPLETED, 1600, {"output_file_id": "file-out", "failed": 0}, [out]
    )
    batch = await store.get_batch("batch_f")
    assert (batch.status, batch.finalizing_at, batch.completed_at) == (S.COMPLETED, 1500, 1600)
    assert batch.output_file_id == "file-out"
    assert await store.get_file(ALICE, "file-out") == out


async def test_transition_refuses_columns_it_may_not_set(store):
    await add_batch(store, make_batch("batch_cols"))
    with pytest.raises(ValueError):
        await store.transition("batch_cols", S.VALIDATING, S.IN_PROGRESS, 1, {"completed": 5})
    assert (await store.get_batch("batch_cols")).status is S.VALIDATING


async def test_transition_refuses_moves_the_status_table_forbids(store):
    await add_batch(store, make_batch("batch_jump"))
    with pytest.raises(ValueError, match="validating to completed"):
        await store.transition("batch_jump", S.VALIDATING, S.COMPLETED, 1)
    assert (await store.get_batch("batch_jump")).status is S.VALIDATING


# --- leases ---------------------------------------------------------------------------------------


async def test_a_live_lease_cannot_be_claimed_an_expired_one_can(store):
    await add_batch(store, make_batch("batch_l"))
    assert await store.claim("batch_l", "w1", 1000.0, 10)
    assert await store.claim("batch_l", "w1", 1001.0, 10), "the holder may claim again (lease now ends at 1011)"
    assert not await store.claim("batch_l", "w2", 1010.5, 10), "a live lease belongs to its holder"
    assert await store.renew("batch_l", "w1", 1005.0, 10) is S.VALIDATING  # lease now ends at 1015
    assert not await store.claim("batch_l", "w2", 1014.0, 10)
    assert await store.claim("batch_l", "w2", 1015.5, 10), "an expired lease can be taken over"

    with pytest.raises(LeaseLost):
        await store.renew("batch_l", "w1", 1016.0, 10)
    assert await store.renew("batch_l", "w2", 1016.0, 10) is S.VALIDATING

    await store.release("batch_l", "w1")  # not the holder: no effect
    assert not await store.claim("batch_l", "w1", 1017.0, 10)
    await store.release("batch_l", "w2")
    assert await store.claim("batch_l", "w1", 1017.0, 10), "a released batch is free at once"


async def test_renew_reports_the_current_status(store):
    await add_batch(store, make_batch("batch_r"))
    assert await store.claim("batch_r", "w1", 1000.0, 30)
    assert await store.transition("batch_r", S.VALIDATING, S.CANCELLING, 1200)
    assert await store.renew("batch_r", "w1", 1001.0, 30) is S.CANCELLING


async def test_batches_to_drive_lists_unleased_batches_with_a_step_for_one_worker(store):
    await add_batch(store, make_batch("batch_v"))  # validating
    await started_batch(store, "batch_run")  # in_progress: its shards are the work, not the batch
    await add_batch(store, make_batch("batch_c"))
    assert await store.transition("batch_c", S.VALIDATING, S.CANCELLING, 1000)
    assert await store.batches_to_drive(1000.0) == ["batch_v", "batch_c"]
    assert "batch_run" in await store.batches_to_drive(1000.0 + 86400), "a running batch past its window"
    assert await store.claim("batch_v", "w1", 1000.0, 10)
    assert await store.batches_to_drive(1005.0) == ["batch_c"], "a leased batch is someone's already"
    assert await store.batches_to_drive(1011.0) == ["batch_v", "batch_c"], "until its lease lapses"


# --- shard leases ---------------------------------------------------------------------------------


async def shard_batch(store, batch_id: str, shards: int, concurrency: int = 8, created_at: int = 1000) -> None:
    batch = BatchRecord(
        batch_id,
        ALICE,
        "/v1/chat/completions",
        "file-in",
        "24h",
        S.VALIDATING,
        created_at,
        created_at + 86400,
        concurrency,
    )
    await add_batch(store, batch)
    spans = [ShardSpan(10 * n + 1, 10 * n + 10, 100 * n) for n in range(shards)]
    assert await store.transition(
        batch_id, S.VALIDATING, S.IN_PROGRESS, created_at, {"total": 10 * shards}, shards=spans
    )


async def test_a_shard_lease_is_exclusive_until_it_lapses(store):
    await shard_batch(store, "batch_s", 1)
    lease = await claim_one(store, "w1", 1000.0, 10, 8)
    assert (lease.shard, lease.first_line, lease.last_line, lease.offset, lease.window) == (0, 1, 10, 0, 8)
    assert await claim_one(store, "w2", 1005.0, 10, 8) is None, "a live shard lease belongs to its holder"
    assert await store.renew_shard(lease, 1008.0, 10) is S.IN_PROGRESS  # now ends at 1018
    assert await claim_one(store, "w2", 1017.0, 10, 8) is None
    taken = await claim_one(store, "w2", 1018.5, 10, 8)
    assert taken is not None and taken.shard == 0 and taken.worker_id == "w2", "a lapsed lease is taken over"
    with pytest.raises(LeaseLost):
        await store.renew_shard(lease, 1019.0, 10)
    await store.release_shard(lease)  # not the holder: no effect
    assert await claim_one(store, "w3", 1019.0, 10, 8) is None
    await store.release_shard(taken)
    assert (await claim_one(store, "w3", 1019.0, 10, 8)).worker_id == "w3", "a released shard is free at once"


async def test_the_leases_of_a_dead_owner_lapse_at_once_and_no_others(store):
    await shard_batch(store, "batch_d", 2)
    await store.insert_batch(make_batch("batch_v"))
    assert await store.claim("batch_v", "dead", 1000.0, 30)
    dead_shard = await claim_one(store, "dead", 1000.0, 30, 8)
    live_shard = await claim_one(store, "alive", 1000.0, 30, 8)
    assert sorted(await store.lease_owners(1001.0)) == ["alive", "dead"]
    await store.expire_leases(["dead"], 1001.0)
    assert await store.lease_owners(1001.0) == ["alive"]
    taken = await claim_one(store, "heir", 1001.0, 30, 8)
    assert taken is not None and taken.shard == dead_shard.shard, "the dead owner's shard is free at once"
    assert await store.claim("batch_v", "heir", 1001.0, 30), "and so is its batch lease"
    assert await store.renew_shard(live_shard, 1002.0, 30) is S.IN_PROGRESS, "a live owner keeps its lease"
    with pytest.raises(LeaseLost):
        await store.record_results(dead_shard, rows(1), Usage())  # fencing holds for the old owner


async def test_a_batch_runs_at_most_its_share_of_shards_and_splits_its_concurrency(store):
    await shard_batch(store, "batch_wide", 10, concurrency=12)
    leases = [await claim_one(store, f"w{i}", 1000.0, 30, 4) for i in range(5)]
    assert [l.shard for l in leases[:4]] == [0, 1, 2, 3] and leases[4] is None, "min(12, per_batch=4) at once"
    assert {l.window for l in leases[:4]} == {3}, "12 lines in flight split over 4 shards"
    assert not await store.finish_shard(leases[0], 1001)
    assert (await claim_one(store, "w9", 1001.0, 30, 4)).shard == 4, "a finished shard frees its place"

    await shard_batch(store, "batch_narrow", 5, concurrency=2)
    narrow = [await claim_one(store, "w", 1002.0, 30, 4) for _ in range(3)]
    assert [l and (l.batch_id, l.window) for l in narrow] == [("batch_narrow", 1), ("batch_narrow", 1), None]


async def test_a_shard_that_sent_every_line_hands_its_place_to_a_successor(store):
    await shard_batch(store, "batch_h", 4, concurrency=8)
    first, second = [await claim_one(store, "w1", 1000.0, 30, 2) for _ in range(2)]
    assert await claim_one(store, "w2", 1001.0, 30, 2) is None, "batch_h runs its 2 places"

    successor = await store.claim_successor(first, 1001.0, 30, 2)
    assert (successor.batch_id, successor.shard, successor.worker_id, successor.window) == ("batch_h", 2, "w1", 4)
    assert await claim_one(store, "w2", 1001.0, 30, 2) is None, "the successor took the first shard's place"
    assert await store.claim_successor(first, 1001.0, 30, 2) is None, "a shard hands its place on once"
    assert (await store.claim_successor(successor, 1002.0, 30, 2)).shard == 3, "a lane runs shards back to back"
    assert await store.claim_successor(second, 1002.0, 30, 2) is None, "no free shard is left"
    assert not await store.finish_shard(first, 1003)
    assert await store.live_shards("batch_h", 1003.0) == 3, "handed-on shards still await their answers"


async def test_a_shard_without_a_successor_or_its_lease_keeps_no_successor(store):
    await shard_batch(store, "batch_k", 3, concurrency=8)
    k0, k1 = [await claim_one(store, "w1", 1000.0, 10, 2) for _ in range(2)]
    k2 = await store.claim_successor(k0, 1000.0, 10, 2)
    assert await store.claim_successor(k1, 1001.0, 10, 2) is None, "no free shard to hand on to"
    await store.release_shard(k2)
    assert (await store.claim_successor(k1, 1002.0, 10, 2)).shard == 2, "k1 kept its place when nothing was free"

    await store.release_shard(k1)  # k1's holder is gone; w2 takes k1
    taken = await claim_one(store, "w2", 1003.0, 10, 2)
    assert (taken.shard, taken.worker_id) == (1, "w2")
    assert await store.claim_successor(k1, 1003.0, 10, 2) is None, "only the holder of the lease hands it on"


async def test_one_claim_takes_the_free_places_of_one_batch_up_to_its_limit(store):
    await shard_batch(store, "batch_a", 6, concurrency=8)
    await shard_batch(store, "batch_b", 6, concurrency=8, created_at=1001)
    leases = await store.claim_shards("w1", 1000.0, 30, 4, 16)
    assert [(l.batch_id, l.shard, l.window) for l in leases] == [("batch_a", n, 2) for n in range(4)], (
        "all 4 places of the least recently served batch, and no other batch's"
    )
    assert [l.shard for l in await store.claim_shards("w2", 1000.5, 30, 4, 3)] == [0, 1, 2], "at most `limit`"
    assert [l.batch_id for l in await store.claim_shards("w2", 1001.0, 30, 4, 3)] == ["batch_b"]
    assert await store.claim_shards("w3", 1002.0, 30, 4, 8) == []


async def test_a_claim_passes_over_the_batches_it_is_told_to_skip(store):
    for n, batch_id in enumerate(("batch_a", "batch_b", "batch_c")):
        await shard_batch(store, batch_id, 1, created_at=1000 + n)
    assert [l.batch_id for l in await store.claim_shards("w", 1000.0, 30, 8, 1, ["batch_a", "batch_b"])] == ["batch_c"]
    assert await store.claim_shards("w", 1000.0, 30, 8, 1, ["batch_a", "batch_b"]) == []
    assert [l.batch_id for l in await store.claim_shards("w", 1000.0, 30, 8, 1, ["batch_b"])] == ["batch_a"]


async def test_claims_go_to_the_least_recently_served_batch(store):
    for i in range(3):
        await shard_batch(store, f"batch_f{i}", 4, created_at=1000 + i)
    order = [(await claim_one(store, "w", 1100.0 + n, 300, 8)).batch_id for n in range(6)]
    assert order == ["batch_f0", "batch_f1", "batch_f2"] * 2, "small batches take turns"


async def test_the_last_shard_to_finish_moves_the_batch_to_finalizing_once(store):
    await shard_batch(store, "batch_fin", 3)
    leases = [await claim_one(store, f"w{i}", 1000.0, 30, 8) for i in range(3)]
    assert not await store.finish_shard(leases[0], 1001)
    with pytest.raises(LeaseLost):
        await store.finish_shard(leases[0], 1001)  # done already
    moved = await asyncio.gather(store.finish_shard(leases[1], 1002), store.finish_shard(leases[2], 1002))
    assert sorted(moved) == [False, True], "exactly one finisher moves the batch"
    batch = await store.get_batch("batch_fin")
    assert batch.status is S.FINALIZING and batch.finalizing_at == 1002
    assert await claim_one(store, "w9", 1003.0, 30, 8) is None


async def test_a_sealed_batch_records_nothing_more_and_gives_out_no_shards(store):
    await shard_batch(store, "batch_seal", 2)
    lease = await claim_one(store, "w1", 1000.0, 30, 8)
    await store.record_results(lease, rows(1, 2), Usage())
    await store.seal("batch_seal")
    with pytest.raises(LeaseLost):
        await store.record_results(lease, rows(3), Usage())
    with pytest.raises(LeaseLost):
        await store.renew_shard(lease, 1001.0, 30)
    assert await claim_one(store, "w2", 1001.0, 30, 8) is None
    assert [line async for line in store.done_lines("batch_seal")] == [1, 2]
    assert (await store.get_batch("batch_seal")).completed == 2
    assert await store.live_shards("batch_seal", 1001.0) == 1
    await store.release_shard(lease)
    assert await store.live_shards("batch_seal", 1001.0) == 0


# --- results (I3) ---------------------------------------------------------------------------------


async def test_record_results_is_fenced_by_the_lease(store):
    lease = await started_batch(store, "batch_x", worker="w1")
    impostor = ShardLease("batch_x", lease.shard, "w2", 1, 10**6, 0, 8)
    with pytest.raises(LeaseLost):
        await store.record_results(impostor, rows(1, 2), Usage(5, 5, 10))
    assert [line async for line in store.done_lines("batch_x")] == []
    batch = await store.get_batch("batch_x")
    assert (batch.completed, batch.failed, batch.usage) == (0, 0, Usage())

    # After a takeover the old holder is fenced out too.
    assert await claim_one(store, "w2", 2000.0, 30, 8) == impostor
    with pytest.raises(LeaseLost):
        await store.record_results(lease, rows(3), Usage())
    assert [line async for line in store.done_lines("batch_x")] == []
    await store.record_results(impostor, rows(4), Usage())
    assert [line async for line in store.done_lines("batch_x")] == [4]


async def test_record_results_counts_and_refuses_duplicates(store):
    lease = await started_batch(store, "batch_c")
    await store.record_results(lease, rows(1, 3) + rows(2, ok=False), Usage(3, 4, 7, 1, 2))
    await store.record_results(lease, rows(5, 6), Usage(1, 1, 2), copies=1)
    batch = await store.get_batch("batch_c")
    assert (batch.completed, batch.failed) == (4, 1)
    assert batch.usage == Usage(4, 5, 9, 1, 2)
    assert batch.duplicates_saved == 1

    with pytest.raises(LeaseLost):
        await store.record_results(lease, rows(7) + rows(3, ok=False), Usage(100, 100, 200), copies=2)
    batch = await store.get_batch("batch_c")
    assert (batch.completed, batch.failed) == (4, 1), "a duplicate must not count twice"
    assert batch.usage == Usage(4, 5, 9, 1, 2)
    assert batch.duplicates_saved == 1
    recorded = [row async for row in store.results("batch_c")]
    assert [(r.line, r.ok) for r in recorded] == [(1, True), (2, False), (3, True), (5, True), (6, True)]
    assert recorded[2].record == b'{"line": 3}', "the first recorded result stays the truth"


async def test_done_lines_and_results_page_through_in_line_order(store):
    lease = await started_batch(store, "batch_big")
    count = 2 * PAGE_ROWS + 501
    lines = list(range(1, count + 1))
    random.Random(7).shuffle(lines)
    for start in range(0, count, 700):
        chunk = lines[start : start + 700]
        await store.record_results(lease, [ResultRow(l, l % 3 != 0, b"r%d" % l) for l in chunk], Usage())
    # Another batch's rows must not leak in.
    other = await started_batch(store, "batch_other")
    await store.record_results(other, rows(1, 2, 4001), Usage())

    done = [line async for line in store.done_lines("batch_big")]
    assert done == list(range(1, count + 1))
    assert [line async for line in store.done_lines("batch_big", 2000, 2010)] == list(range(2000, 2011))
    results = [row async for row in store.results("batch_big")]
    assert [r.line for r in results] == list(range(1, count + 1))
    assert all(r.ok == (r.line % 3 != 0) and r.record == b"r%d" % r.line for r in results)
    batch = await store.get_batch("batch_big")
    assert batch.completed + batch.failed == count
    assert batch.failed == count // 3


@pytest.mark.parametrize("end", [S.COMPLETED, S.CANCELLED, S.EXPIRED])
async def test_terminal_transitions_delete_result_rows(store, end):
    lease = await started_batch(store, "batch_t")
    keep = await started_batch(store, "batch_keep")
    await store.record_results(lease, rows(1, 2, 3), Usage())
    await store.record_results(keep, rows(1, 2), Usage())
    before_end = {S.COMPLETED: S.FINALIZING, S.CANCELLED: S.CANCELLING, S.EXPIRED: S.IN_PROGRESS}[end]
    if before_end is not S.IN_PROGRESS:
        assert await store.transition("batch_t", S.IN_PROGRESS, before_end, 1100)
        assert [l async for l in store.done_lines("batch_t")] == [1, 2, 3], "non-terminal moves keep the rows"
    assert await store.transition("batch_t", before_end, end, 1200)
    assert [l async for l in store.done_lines("batch_t")] == []
    assert [l async for l in store.done_lines("batch_keep")] == [1, 2]
    batch = await store.get_batch("batch_t")
    assert batch.completed == 3, "the counts survive the rows"
    assert await store.live_shards("batch_t", 1000.0) == 0 and await store.live_shards("batch_keep", 1000.0) == 1


async def test_result_page_reads_after_a_line_up_to_a_limit_in_line_order(store):
    lease = await started_batch(store, "batch_p")
    other = await started_batch(store, "batch_q")
    await store.record_results(lease, rows(7, 2, 9, ok=False), Usage())
    await store.record_results(lease, rows(1, 4), Usage())
    await store.record_results(other, rows(3), Usage())

    page = await store.result_page("batch_p", 0, 3)
    assert [(r.line, r.ok) for r in page] == [(1, True), (2, False), (4, True)]
    assert page[0].record == b'{"line": 1}'
    assert [r.line for r in await store.result_page("batch_p", 4, 10)] == [7, 9]
    assert await store.result_page("batch_p", 9, 10) == []
    assert [r.line for r in await store.result_page("batch_q", 0, 10)] == [3], "another batch's rows stay apart"


async def test_lines_are_settled_once_every_shard_holding_them_is_finished(store):
    await shard_batch(store, "batch_s", 3)  # shards of lines 1-10, 11-20, 21-30
    leases = [await claim_one(store, f"w{i}", 1000.0, 30, 8) for i in range(3)]
    assert not await store.lines_settled("batch_s", 5, 5)
    await store.finish_shard(leases[1], 1001)
    assert await store.lines_settled("batch_s", 11, 20)
    assert await store.lines_settled("batch_s", 14, 14)
    assert not await store.lines_settled("batch_s", 10, 11), "line 10 lies in an unfinished shard"
    assert not await store.lines_settled("batch_s", 20, 21)
    assert await store.lines_settled("batch_s", 31, 40), "lines past every shard hold no request"


async def test_a_failed_batch_keeps_its_result_rows(store):
    lease = await started_batch(store, "batch_f")
    await store.record_results(lease, rows(1, 2), Usage())
    assert await store.transition("batch_f", S.IN_PROGRESS, S.FAILED, 1200)
    assert [r.line for r in await store.result_page("batch_f", 0, 10)] == [1, 2]


# --- listing and scopes ---------------------------------------------------------------------------


async def test_list_batches_pages_newest_first_within_a_scope(store):
    ids = [f"batch_a{i}" for i in range(5)]
    for i, batch_id in enumerate(ids):
        await add_batch(store, make_batch(batch_id, ALICE, created_at=1000 + i))
        await add_batch(store, make_batch(f"batch_b{i}", BOB, input_file_id="file-bob", created_at=1000 + i))
    await add_batch(store, make_batch("batch_ax", ALICE_FOR_X, input_file_id="file-x"))

    page, more = await store.list_batches(ALICE, Page(limit=2, after=None))
    assert [b.id for b in page] == ["batch_a4", "batch_a3"] and more
    page, more = await store.list_batches(ALICE, Page(limit=2, after="batch_a3"))
    assert [b.id for b in page] == ["batch_a2", "batch_a1"] and more
    page, more = await store.list_batches(ALICE, Page(limit=2, after="batch_a1"))
    assert [b.id for b in page] == ["batch_a0"] and not more
    page, more = await store.list_batches(ALICE, Page(limit=5, after=None))
    assert [b.id for b in page] == ids[::-1] and not more, "exactly `limit` left: has_more is false"

    assert [b.id for b in (await store.list_batches(BOB, Page(limit=100, after=None)))[0]] == [
        f"batch_b{i}" for i in range(4, -1, -1)
    ]
    assert [b.id for b in (await store.list_batches(ALICE_FOR_X, Page(limit=100, after=None)))[0]] == ["batch_ax"]
    assert await store.get_batch("batch_a0", BOB) is None
    assert await store.get_batch("batch_a0", ALICE_FOR_X) is None
    assert (await store.get_batch("batch_a0", ALICE)).id == "batch_a0"
    # Another scope's id as a cursor leaks nothing of that scope.
    page, _ = await store.list_batches(ALICE, Page(limit=100, after="batch_b2"))
    assert all(b.scope == ALICE for b in page)


async def test_list_files_pages_in_both_orders_with_filters_and_scopes(store):
    for i in range(4):
        await store.insert_file(make_file(f"file-a{i}", ALICE, purpose="batch" if i % 2 == 0 else "batch_output"))
    await store.insert_file(make_file("file-b0", BOB))

    page, more = await store.list_files(ALICE, Page(limit=3, after=None), None, None)
    assert [f.id for f in page] == ["file-a3", "file-a2", "file-a1"] and more
    page, more = await store.list_files(ALICE, Page(limit=3, after="file-a1"), None, None)
    assert [f.id for f in page] == ["file-a0"] and not more
    page, more = await store.list_files(ALICE, Page(limit=2, after=None, descending=False), None, None)
    assert [f.id for f in page] == ["file-a0", "file-a1"] and more
    page, more = await store.list_files(ALICE, Page(limit=2, after="file-a1", descending=False), None, None)
    assert [f.id for f in page] == ["file-a2", "file-a3"] and not more
    page, _ = await store.list_files(ALICE, Page(limit=10, after=None), "batch_output", None)
    assert [f.id for f in page] == ["file-a3", "file-a1"]
    page, _ = await store.list_files(BOB, Page(limit=10, after=None), None, None)
    assert [f.id for f in page] == ["file-b0"]
    assert await store.get_file(BOB, "file-a0") is None
    assert await store.get_file(ALICE_FOR_X, "file-a0") is None


# --- retention ------------------------------------------------------------------------------------


async def test_expired_files_skips_files_an_unfinished_batch_uses(store):
    await store.insert_file(make_file("file-old", expires_at=500))
    await store.insert_file(make_file("file-busy", expires_at=500))
    await store.insert_file(make_file("file-done", expires_at=500))
    await store.insert_file(make_file("file-fresh", expires_at=5000))
    await store.insert_file(make_file("file-forever", expires_at=None))
    await add_batch(store, make_batch("batch_busy", input_file_id="file-busy"))  # validating: active
    await add_batch(store, make_batch("batch_done", input_file_id="file-done"))
    assert await store.transition("batch_done", S.VALIDATING, S.FAILED, 900, {"errors": {"object": "list"}})

    assert sorted(f.id for f in await store.expired_files(1000, 100)) == ["file-done", "file-old"]
    assert len(await store.expired_files(1000, 1)) == 1

    # Each active status protects the file; a terminal one releases it.
    for expected, target in [(S.VALIDATING, S.IN_PROGRESS), (S.IN_PROGRESS, S.CANCELLING)]:
        assert await store.transition("batch_busy", expected, target, 950)
        assert "file-busy" not in [f.id for f in await store.expired_files(1000, 100)]
    assert await store.transition("batch_busy", S.CANCELLING, S.CANCELLED, 960)
    assert "file-busy" in [f.id for f in await store.expired_files(1000, 100)]

    assert (await store.delete_file("file-old")).id == "file-old"
    assert await store.delete_file("file-old") is None
    assert sorted(f.id for f in await store.expired_files(1000, 100)) == ["file-busy", "file-done"]


async def test_delete_file_refuses_the_input_of_an_unfinished_batch(store):
    await store.insert_file(make_file("file-in-use", expires_at=500))
    await add_batch(store, make_batch("batch_user", input_file_id="file-in-use"))
    with pytest.raises(Conflict):
        await store.delete_file("file-in-use")
    assert await store.get_file(ALICE, "file-in-use") is not None
    assert await store.transition("batch_user", S.VALIDATING, S.FAILED, 900, {"errors": {"object": "list"}})
    assert (await store.delete_file("file-in-use")).id == "file-in-use"
    assert await store.get_file(ALICE, "file-in-use") is None


async def test_a_batch_insert_needs_its_input_file_in_its_own_scope(store):
    await store.insert_file(make_file("file-own"))
    assert not await store.insert_batch(make_batch("batch_nofile", input_file_id="file-gone"))
    assert not await store.insert_batch(make_batch("batch_other", BOB, input_file_id="file-own"))
    assert await store.get_batch("batch_nofile") is None and await store.get_batch("batch_other") is None
    assert await store.insert_batch(make_batch("batch_ok", input_file_id="file-own"))


async def _delete_or_refuse(store, file_id: str) -> bool:
    try:
        return await store.delete_file(file_id) is not None
    except Conflict:
        return False


async def test_a_batch_insert_and_the_delete_of_its_input_never_both_succeed(store, store_url):
    """Two connections race, round after round: exactly one of insert and delete wins, and the state agrees."""
    other = await batchgate.store.open_store(store_url)
    try:
        for round_ in range(30):
            file_id, batch_id = f"file-race{round_}", f"batch_race{round_}"
            await store.insert_file(make_file(file_id))
            racers = [
                store.insert_batch(make_batch(batch_id, input_file_id=file_id)),
                _delete_or_refuse(other, file_id),
            ]
            if round_ % 2:
                racers.reverse()
            outcomes = await asyncio.gather(*racers)
            inserted, deleted = outcomes if round_ % 2 == 0 else outcomes[::-1]
            assert inserted is not deleted, f"round {round_}: inserted={inserted} deleted={deleted}"
            assert (await store.get_batch(batch_id) is not None) is inserted
            assert (await store.get_file(ALICE, file_id) is None) is deleted
    finally:
        await other.close()


async def test_concurrent_deletes_of_one_file_have_exactly_one_winner(store, store_url):
    others = [await batchgate.store.open_store(store_url) for _ in range(3)]
    try:
        for round_ in range(10):
            file_id = f"file-twice{round_}"
            await store.insert_file(make_file(file_id))
            deletes = [s.delete_file(file_id) for s in [store, *others] for _ in range(2)]
            gone = [f for f in await asyncio.gather(*deletes) if f is not None]
            assert [f.id for f in gone] == [file_id], f"round {round_}: {len(gone)} deletes won"
    finally:
        for opened in others:
            await opened.close()


async def test_postgresql_disk_full_is_insufficient_storage(postgres_server):
    """PostgreSQL's disk-full class (53100), raised by the server itself (from a trigger), becomes a 507."""
    store = await batchgate.store.open_store(postgres_server.database())
    try:
        await store._write(
            lambda db: db.execute(
                "CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
            )
        )
        await store._write(
            lambda db: db.execute(
                "CREATE TRIGGER no_room BEFORE INSERT ON files FOR EACH ROW EXECUTE FUNCTION disk_is_full()"
            )
        )
        with pytest.raises(InsufficientStorage) as refused:
            await store.insert_file(make_file("file-big"))
        assert refused.value.status == 507 and refused.value.code == "insufficient_storage"
    finally:
        await store.close()


async def test_a_read_does_not_wait_for_a_write_in_progress(store):
    """A status poll is answered while a commit of results is still under way (WAL readers on SQLite)."""
    await store.insert_file(make_file("file-a"))
    release = threading.Event()
    writing = asyncio.ensure_future(store._write(lambda db: release.wait(10)))  # a write holding its transaction
    await asyncio.sleep(0.05)
    try:
        found = await asyncio.wait_for(store.get_file(ALICE, "file-a"), 5)
    finally:
        release.set()
        await writing
    assert found is not None and found.id == "file-a"


async def test_postgresql_ends_a_session_paused_inside_a_transaction(postgres_server, monkeypatch):
    """A worker paused mid-transaction (a suspended VM) must not hold its row locks until it resumes."""
    monkeypatch.setattr(postgresql, "IDLE_IN_TRANSACTION", "300ms")
    store = await batchgate.store.open_store(postgres_server.database())
    try:
        await add_batch(store, make_batch("batch_1"))
        holding, resume = threading.Event(), threading.Event()

        def pause_holding_the_row(db):
            db.execute("SELECT id FROM batches WHERE id = %s FOR UPDATE", ("batch_1",))
            holding.set()
            resume.wait(10)  # idle in transaction, as a frozen process would be
            db.execute("SELECT 1")

        paused = asyncio.ensure_future(store._write(pause_holding_the_row))
        assert await asyncio.to_thread(holding.wait, 5)
        try:
            moved = await asyncio.wait_for(store.transition("batch_1", S.VALIDATING, S.FAILED, 1001), 5)
        finally:
            resume.set()
        assert moved
        with pytest.raises(Unavailable):
            await paused
        assert (await store.get_batch("batch_1")).status == S.FAILED
    finally:
        await store.close()


async def test_sqlite_cuts_its_write_ahead_log_back_after_a_big_transaction(tmp_path, monkeypatch):
    """Deleting a finished batch's results is one big transaction; the WAL must not keep that size on disk."""
    from batchgate.store import sqlite

    monkeypatch.setattr(sqlite, "WAL_KEPT_BYTES", 256 * 1024)
    path = tmp_path / "t.db"
    store = await batchgate.store.open_store(f"sqlite:///{path}")
    wal = tmp_path / "t.db-wal"
    try:
        await store._write(lambda db: db.execute("CREATE TABLE filler (x BLOB)"))
        await store._write(
            lambda db: db.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4096,) for _ in range(2000)])
        )
        grown = wal.stat().st_size
        await store._run(
            lambda: store._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        )  # as SQLite's own would
        await store._write(lambda db: db.execute("DELETE FROM filler WHERE rowid = 1"))  # restarts the log
        assert grown > 4_000_000 and wal.stat().st_size <= 256 * 1024
    finally:
        await store.close()
