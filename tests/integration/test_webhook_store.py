"""The webhook outbox in the metadata stores, SQLite and PostgreSQL alike: events written by a batch's
terminal transition itself, deliveries leased to one courier at a time, attempts fenced by the lease."""

from __future__ import annotations

import asyncio

import pytest

import batchgate.store
from batchgate.domain.records import Scope
from batchgate.domain.status import BatchStatus as S
from batchgate.domain.webhooks import EVENT_TYPES, WebhookEndpoint
from tests.integration.test_store import ALICE, ALICE_FOR_X, BOB, add_batch, make_batch

LEASE = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path / "t.db")
    else:
        url = request.getfixturevalue("postgres_server").database()
    opened = await batchgate.store.open_store(url)
    yield opened
    await opened.close()


async def add_endpoint(store, endpoint_id: str, scope: Scope, events: tuple[str, ...] = EVENT_TYPES) -> None:
    await store.insert_webhook(
        WebhookEndpoint(endpoint_id, scope, f"https://example.com/{endpoint_id}", events, f"whsec_{endpoint_id}", 1)
    )


async def ended(store, batch_id: str, scope: Scope, target: S) -> None:
    """A batch of `scope` moved to the terminal `target` by the path a worker takes."""
    await add_batch(store, make_batch(batch_id, scope, input_file_id=f"file-{batch_id}"))
    path = {
        S.FAILED: [S.FAILED],
        S.COMPLETED: [S.IN_PROGRESS, S.FINALIZING, S.COMPLETED],
        S.CANCELLED: [S.IN_PROGRESS, S.CANCELLING, S.CANCELLED],
        S.EXPIRED: [S.IN_PROGRESS, S.EXPIRED],
    }[target]
    status = S.VALIDATING
    for step in path:
        assert await store.transition(batch_id, status, step, 2000)
        status = step


def states(deliveries) -> list[tuple[str, str, str, int]]:
    return [(d.endpoint_id, d.event_type, d.state, d.attempts) for d in deliveries]


@pytest.mark.parametrize(
    ("target", "event"),
    [
        (S.COMPLETED, "batch.completed"),
        (S.FAILED, "batch.failed"),
        (S.CANCELLED, "batch.cancelled"),
        (S.EXPIRED, "batch.expired"),
    ],
)
async def test_a_terminal_transition_writes_one_event_for_each_listening_endpoint_of_its_scope(store, target, event):
    await add_endpoint(store, "we_all", ALICE)
    await add_endpoint(store, "we_only", ALICE, (event,))
    await add_endpoint(store, "we_other_type", ALICE, tuple(t for t in EVENT_TYPES if t != event))
    await add_endpoint(store, "we_x", ALICE_FOR_X)
    await add_endpoint(store, "we_bob", BOB)
    await ended(store, "batch_1", ALICE, target)

    deliveries = await store.deliveries_of_batch("batch_1")
    assert states(deliveries) == [("we_all", event, "pending", 0), ("we_only", event, "pending", 0)]
    assert len({d.event_id for d in deliveries}) == 1 and deliveries[0].event_id.startswith("evt_")


async def test_only_the_terminal_step_and_only_a_won_compare_and_set_write_events(store):
    await add_endpoint(store, "we_all", ALICE)
    await add_batch(store, make_batch("batch_1", ALICE))
    assert await store.transition("batch_1", S.VALIDATING, S.IN_PROGRESS, 2000)
    assert await store.transition("batch_1", S.IN_PROGRESS, S.CANCELLING, 2000)
    assert await store.deliveries_of_batch("batch_1") == []
    assert not await store.transition("batch_1", S.IN_PROGRESS, S.EXPIRED, 2000)  # lost: it is cancelling
    assert await store.deliveries_of_batch("batch_1") == []
    assert await store.transition("batch_1", S.CANCELLING, S.CANCELLED, 2000)
    assert states(await store.deliveries_of_batch("batch_1")) == [("we_all", "batch.cancelled", "pending", 0)]


async def test_a_delivery_is_leased_to_one_courier_and_fenced_by_its_lease(store):
    await add_endpoint(store, "we_all", ALICE)
    await ended(store, "batch_1", ALICE, S.COMPLETED)

    [first] = await store.claim_deliveries("w1", 3000.0, LEASE, 10)
    assert (first.endpoint_id, first.event_type, first.batch_id, first.attempts) == (
        "we_all",
        "batch.completed",
        "batch_1",
        0,
    )
    assert (first.url, first.secret, first.event_created_at) == ("https://example.com/we_all", "whsec_we_all", 2000)
    assert await store.claim_deliveries("w2", 3001.0, LEASE, 10) == []

    # w1 went quiet: once its lease lapses, w2 takes the delivery and w1 can record nothing.
    [again] = await store.claim_deliveries("w2", 3000.0 + LEASE + 1, LEASE, 10)
    assert again.event_id == first.event_id
    assert not await store.settle_delivery(first, "w1", None, None)
    assert await store.settle_delivery(again, "w2", None, None)
    assert states(await store.deliveries_of_batch("batch_1")) == [("we_all", "batch.completed", "delivered", 1)]
    assert await store.claim_deliveries("w3", 10_000.0, LEASE, 10) == []


async def test_a_failed_attempt_waits_for_its_retry_time_and_a_last_one_gives_up(store):
    await add_endpoint(store, "we_all", ALICE)
    await ended(store, "batch_1", ALICE, S.FAILED)

    [delivery] = await store.claim_deliveries("w1", 3000.0, LEASE, 10)
    assert await store.settle_delivery(delivery, "w1", 3010.0, "HTTP 500")
    assert await store.claim_deliveries("w1", 3009.0, LEASE, 10) == []
    [retry] = await store.claim_deliveries("w1", 3010.0, LEASE, 10)
    assert retry.attempts == 1
    assert await store.settle_delivery(retry, "w1", None, "HTTP 503")
    [state] = await store.deliveries_of_batch("batch_1")
    assert (state.state, state.attempts, state.last_error) == ("failed", 2, "HTTP 503")
    assert await store.claim_deliveries("w1", 1e9, LEASE, 10) == []


async def test_concurrent_couriers_never_share_a_delivery(store):
    for n in range(4):
        await add_endpoint(store, f"we_{n}", ALICE)
    for n in range(10):
        await ended(store, f"batch_{n}", ALICE, S.COMPLETED)

    claims = await asyncio.gather(*(store.claim_deliveries(f"w{n}", 3000.0, LEASE, 7) for n in range(8)))
    keys = [(d.event_id, d.endpoint_id) for claim in claims for d in claim]
    assert len(keys) == 40 and len(set(keys)) == 40


async def test_endpoints_are_listed_and_removed_within_their_scope_only(store):
    await add_endpoint(store, "we_a", ALICE, ("batch.failed", "batch.completed"))
    await add_endpoint(store, "we_x", ALICE_FOR_X)
    await ended(store, "batch_1", ALICE, S.COMPLETED)

    [listed] = await store.list_webhooks(ALICE)
    assert (listed.id, listed.events, listed.scope) == ("we_a", ("batch.failed", "batch.completed"), ALICE)
    assert not await store.delete_webhook(BOB, "we_a")
    assert not await store.delete_webhook(ALICE_FOR_X, "we_a")
    assert await store.delete_webhook(ALICE, "we_a")
    assert await store.list_webhooks(ALICE) == []
    assert [e.id for e in await store.list_webhooks(ALICE_FOR_X)] == ["we_x"]
    # Its undelivered events went with it.
    assert await store.deliveries_of_batch("batch_1") == []
    assert await store.claim_deliveries("w1", 3000.0, LEASE, 10) == []


async def test_settled_events_past_the_window_are_swept_and_pending_ones_kept(store):
    await add_endpoint(store, "we_all", ALICE)
    await ended(store, "batch_done", ALICE, S.COMPLETED)  # raised at 2000
    await ended(store, "batch_waiting", ALICE, S.FAILED)
    delivered = next(d for d in await store.claim_deliveries("w1", 3000.0, LEASE, 10) if d.batch_id == "batch_done")
    assert await store.settle_delivery(delivered, "w1", None, None)

    assert await store.sweep_events(before=2000) == 0  # not yet past the window
    assert await store.sweep_events(before=2001) == 1
    assert await store.deliveries_of_batch("batch_done") == []
    assert states(await store.deliveries_of_batch("batch_waiting")) == [("we_all", "batch.failed", "pending", 0)]
