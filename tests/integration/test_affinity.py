"""Affinity on real processes: `batchgate serve` with a pool of three mock upstreams, a batch of prefix
groups shuffled through its file. Cache-aware, each group's lines all reach one member; not, they spread."""

from __future__ import annotations

import random

import pytest

from batchgate.domain.affinity import Ring
from batchgate.domain.prefix import prefix_key
from tests.support.lifecycle import (
    CHAT,
    assert_partition,
    client,
    closed_port_url,
    config,
    outputs,
    start_batch,
    wait_status,
)
from tests.support.servers import MockUpstream

GROUPS, PER_GROUP = 8, 6


@pytest.fixture
def pool(tmp_path):
    mocks = [MockUpstream(tmp_path, 0.03) for _ in range(3)]
    yield mocks
    for mock in mocks:
        mock.stop()


def pool_config(mocks: list[MockUpstream], extra: str) -> str:
    return config(*({"name": f"gpu-{i}", "base_url": mock.base_url} for i, mock in enumerate(mocks)), extra=extra)


def grouped_lines() -> list[dict]:
    """GROUPS prefix groups (a system prompt each) of PER_GROUP lines, shuffled through the file."""
    lines = [
        {
            "custom_id": f"g{group}-{n}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": "m",
                "messages": [
                    {"role": "system", "content": f"You are grader number {group}. Answer yes or no."},
                    {"role": "user", "content": f"g{group} line {n}"},
                ],
            },
        }
        for group in range(GROUPS)
        for n in range(PER_GROUP)
    ]
    random.Random(14).shuffle(lines)
    return lines


def members_by_group(mocks: list[MockUpstream]) -> dict[str, set[int]]:
    """For each group, which members (by index) its lines reached."""
    reached: dict[str, set[int]] = {}
    for index, mock in enumerate(mocks):
        for request in mock.requests():
            reached.setdefault(request["text"].split()[0], set()).add(index)
    return reached


def run(make_gateway, mocks: list[MockUpstream], extra: str) -> dict[str, set[int]]:
    gateway = make_gateway(pool_config(mocks, extra))
    api = client(gateway)
    lines = grouped_lines()
    _, batch = start_batch(api, lines, max_concurrency=6)
    batch = wait_status(api, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == len(lines)
    assert_partition(*outputs(api, batch), [line["custom_id"] for line in lines])
    reached = members_by_group(mocks)
    assert sorted(reached) == sorted(f"g{group}" for group in range(GROUPS))
    return reached


def test_cache_aware_each_group_reaches_one_member_and_the_groups_spread(make_gateway, pool):
    # A generous load factor: six lines in flight never push a member over its bound, so no group moves.
    reached = run(make_gateway, pool, "affinity_load_factor = 10")
    assert all(len(members) == 1 for members in reached.values()), reached
    assert len(set().union(*reached.values())) >= 2, reached  # groups, not the whole batch, share a member


def test_not_cache_aware_the_groups_spread_over_the_members(make_gateway, pool):
    reached = run(make_gateway, pool, "cache_aware = false")
    assert any(len(members) > 1 for members in reached.values()), reached
    assert len(set().union(*reached.values())) == 3, reached


def test_the_groups_of_a_member_that_is_down_move_to_the_next_on_the_ring_and_the_others_stay(make_gateway, pool):
    live = {0: pool[0], 2: pool[1]}  # gpu-1 is down: nothing listens at its address
    upstreams = [
        {"name": f"gpu-{i}", "base_url": live[i].base_url if i in live else closed_port_url()} for i in range(3)
    ]
    gateway = make_gateway(
        config(*upstreams, extra="affinity_load_factor = 10\neject_after_failures = 1\nretry_base_seconds = 0.01")
    )
    api = client(gateway)
    lines = grouped_lines()
    _, batch = start_batch(api, lines, max_concurrency=6)
    batch = wait_status(api, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == len(lines)

    ring = Ring([upstream["name"] for upstream in upstreams])
    reached = members_by_group([live[0], live[2]])
    moved = 0
    bodies = {line["body"]["messages"][-1]["content"].split()[0]: line["body"] for line in lines}
    for group, body in bodies.items():
        home, following = list(ring.clockwise(prefix_key(CHAT, body)))[:2]
        expected = following if home == 1 else home
        assert reached[group] == {[0, 2].index(expected)}, (group, home, following, reached)
        moved += home == 1
    assert moved, "no group lived on the member that is down: the test shows nothing"
