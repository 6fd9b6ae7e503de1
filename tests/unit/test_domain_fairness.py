"""domain/fairness.py: deficit round-robin over tenants, then batches."""

from __future__ import annotations

import pytest

from batchgate.domain.fairness import FairQueue, Flow


def drain(queue: FairQueue) -> list:
    return [queue.pop() for _ in range(len(queue))]


def test_one_flow_is_first_come_first_served():
    queue = FairQueue()
    for i in range(5):
        queue.push(Flow("t", "b"), i)
    assert drain(queue) == [0, 1, 2, 3, 4]


def test_a_small_batch_arriving_behind_a_huge_one_alternates_with_it():
    queue = FairQueue()
    for i in range(1000):
        queue.push(Flow("t", "huge"), ("huge", i))
    for i in range(3):
        queue.push(Flow("t", "small"), ("small", i))
    first = [queue.pop() for _ in range(6)]
    assert [name for name, _ in first] == ["huge", "small", "huge", "small", "huge", "small"]
    assert all(name == "huge" for name, _ in drain(queue))


def test_tenants_share_first_then_their_batches():
    queue = FairQueue()
    for batch in ("a1", "a2", "a3"):
        for _ in range(10):
            queue.push(Flow("alice", batch), batch)
    for _ in range(10):
        queue.push(Flow("bob", "b1"), "b1")
    first = [queue.pop() for _ in range(12)]
    assert first.count("b1") == 6  # bob has half the turns, with one batch against alice's three
    assert first.count("a1") == first.count("a2") == first.count("a3") == 2


def test_costs_share_the_cost_not_the_count():
    queue = FairQueue(quantum=10)
    for _ in range(20):
        queue.push(Flow("t", "heavy"), "heavy", cost=10)
        queue.push(Flow("t", "light"), "light", cost=1)
    first = [queue.pop() for _ in range(22)]
    assert first.count("heavy") == 2 and first.count("light") == 20


def test_an_idle_flow_keeps_no_credit():
    queue = FairQueue()
    queue.push(Flow("t", "a"), "a")
    assert queue.pop() == "a"
    for _ in range(3):
        queue.push(Flow("t", "b"), "b")
    queue.push(Flow("t", "a"), "a")
    assert drain(queue) == ["b", "a", "b", "b"]


def test_pop_from_empty_raises():
    with pytest.raises(IndexError):
        FairQueue().pop()
