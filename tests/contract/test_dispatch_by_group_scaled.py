"""Grouped dispatch on PostgreSQL and S3: the dispatch copy in the bucket, the lines already recorded found
with PostgreSQL's own query, and I1–I2 across a cancel and a kill -9 (docs/caching.md)."""

from __future__ import annotations

from tests.contract.test_crash_recovery import kill_now
from tests.contract.test_dispatch_by_group import connect, group_order, grouped_line, shuffled, slow_mock  # noqa: F401
from tests.support.lifecycle import (
    assert_counts,
    assert_partition,
    config,
    outputs,
    start_batch,
    texts_of,
    wait_status,
    wait_until,
)

STACKS = ("postgresql+s3",)
SHARDS = {"BATCHGATE_SHARD_LINES": "20"}


def test_a_planned_batch_goes_out_by_group_and_comes_back_in_input_order(make_gateway, connect, slow_mock):  # noqa: F811
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}), env=SHARDS)
    api = connect(gw)
    lines = shuffled(60)
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=1)
    done = wait_status(api, batch.id, timeout=40)
    assert done.status == "completed"
    assert texts_of(slow_mock.requests()) == group_order(lines)
    output, errors = outputs(api, done)
    assert errors == [] and [line["custom_id"] for line in output] == [c for c, _, _ in lines]


def test_a_planned_batch_cancelled_then_another_killed_keep_every_line_once(make_gateway, connect, slow_mock):  # noqa: F811
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}), env=SHARDS)
    api = connect(gw)
    lines = shuffled(160)
    requests = [grouped_line(c, g, t) for c, g, t in lines]

    _, cancelled = start_batch(api, requests, max_concurrency=4)
    wait_until(lambda: api.batches.retrieve(cancelled.id).request_counts.completed >= 12, timeout=20, what="answers")
    api.batches.cancel(cancelled.id)
    done = wait_status(api, cancelled.id)
    assert done.status == "cancelled"
    assert_partition(*outputs(api, done), (c for c, _, _ in lines))  # I1
    assert_counts(done, 160)  # I2

    _, killed = start_batch(api, requests, max_concurrency=8)
    kill_now(gw, api, killed.id, 40)
    gw.start()
    done = wait_status(api, killed.id, timeout=40)
    assert done.status == "completed"
    output, errors = outputs(api, done)
    assert errors == [] and [line["custom_id"] for line in output] == [c for c, _, _ in lines]
    assert_counts(done, 160)
