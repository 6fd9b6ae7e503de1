"""domain/aimd.py: adaptive concurrency between a floor and the cap."""

from __future__ import annotations

import random

import pytest

from batchgate.domain.aimd import Aimd


def test_starts_at_the_cap():
    assert Aimd(cap=256, floor=4).current == 256


def refusals_in_a_row(aimd: Aimd, count: int, now: float, sent_at: float) -> list[bool]:
    return [aimd.refused(now, sent_at) for _ in range(count)]


def test_refusals_cut_multiplicatively_once_per_overload():
    aimd = Aimd(cap=100, floor=4)
    assert refusals_in_a_row(aimd, 10, now=1.0, sent_at=0.9) == [False] * 9 + [True]  # a share, not one 429
    assert aimd.current == 70
    # The rest of the window sent before the cut: already answered by it, no second cut.
    assert refusals_in_a_row(aimd, 20, now=1.1, sent_at=0.95) == [True] * 20
    assert aimd.current == 70
    assert aimd.refused(now=1.3, sent_at=1.2)  # sent after the cut and still refused: too many still
    assert aimd.current == 49


@pytest.mark.parametrize("seed", range(5))
def test_sporadic_refusals_leave_the_limit_alone(seed):
    aimd = Aimd(cap=64, floor=4)
    draw = random.Random(seed).random
    for i in range(10_000):  # 5% of answers refused at random, whatever the load
        now = i * 0.003
        if draw() < 0.05:
            assert not aimd.refused(now, sent_at=now - 0.2)  # not the limit's doing
        else:
            aimd.success(0.2, now)
    assert aimd.current == 64


def test_never_below_the_floor_nor_above_the_cap():
    aimd = Aimd(cap=50, floor=5)
    for i in range(100):
        aimd.refused(now=float(i), sent_at=float(i))
    assert aimd.current == 5
    assert not aimd.refused(now=101.0, sent_at=101.0)  # at the floor a refusal is no longer the limit's doing
    for _ in range(100_000):
        aimd.success(0.01, now=200.0)
    assert aimd.current == 50


def test_additive_increase_is_about_one_per_window_of_successes():
    aimd = Aimd(cap=1000, floor=1)
    aimd.limit = 10.0
    for _ in range(10):
        aimd.success(0.1, now=0.0)
    assert 10.9 < aimd.limit < 11.0
    for _ in range(110):
        aimd.success(0.1, now=0.0)
    assert 18.0 < aimd.limit < 19.0  # windows of 11, 12, … 17 successes, then part of 18


def test_rising_latency_is_a_decrease():
    aimd = Aimd(cap=100, floor=1)
    for _ in range(50):
        aimd.success(0.2, now=0.0)
    assert aimd.current == 100
    for i in range(50):
        aimd.success(0.6, now=float(i))
    assert aimd.current < 50


def test_jitter_of_a_fast_upstream_is_not_a_rise():
    aimd = Aimd(cap=100, floor=1)
    for i in range(1000):
        aimd.success(0.001 if i % 2 else 0.02, now=float(i))  # 20× the baseline, but only 20 ms
    assert aimd.current == 100


@pytest.mark.parametrize("cap, floor", [(4, 5), (10, 0)])
def test_bad_range_is_refused(cap, floor):
    with pytest.raises(ValueError):
        Aimd(cap=cap, floor=floor)


def test_latencies_that_vary_request_to_request_are_not_a_rise():
    aimd = Aimd(cap=100, floor=1)
    for i in range(2000):
        aimd.success(0.5 if i % 5 else 4.0, now=float(i))  # most answers short, every fifth one long
    assert aimd.current == 100


def test_a_new_normal_stops_counting_once_the_baseline_has_caught_up():
    aimd = Aimd(cap=100, floor=1)
    for i in range(100):
        aimd.success(0.2, now=float(i))
    for i in range(100, 200):
        aimd.success(0.8, now=float(i))
    low = aimd.current
    assert low < 50
    for i in range(200, 2000):
        aimd.success(0.8, now=float(i))
    assert aimd.current > low + 10  # growing again at the new latency
