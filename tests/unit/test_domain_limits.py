"""domain/limits.py: token buckets for rpm/tpm and the token estimate of a request body."""

from __future__ import annotations

import pytest

from batchgate.domain.limits import TokenBucket, estimate_tokens


def test_a_full_bucket_lets_a_minute_through_then_refills_at_the_rate():
    bucket = TokenBucket(60, now=0.0)  # one a second
    for _ in range(60):
        assert bucket.wait(1, 0.0) == 0.0
        bucket.take(1, 0.0)
    assert bucket.wait(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait(1, 0.5) == pytest.approx(0.5)
    assert bucket.wait(1, 1.0) == 0.0
    bucket.take(1, 1.0)
    assert bucket.wait(3, 1.0) == pytest.approx(3.0)


def test_refill_stops_at_capacity():
    bucket = TokenBucket(120, now=0.0)
    bucket.take(120, 0.0)
    assert bucket.wait(120, 3600.0) == 0.0
    bucket.take(120, 3600.0)
    assert bucket.wait(1, 3600.0) == pytest.approx(0.5)


def test_a_take_larger_than_the_bucket_waits_for_a_full_bucket_then_goes_into_debt():
    bucket = TokenBucket(1000, now=0.0)
    bucket.take(500, 0.0)
    assert bucket.wait(5000, 0.0) == pytest.approx(30.0)  # until full, not forever
    bucket.take(5000, 30.0)
    assert bucket.level == pytest.approx(-4000)
    assert bucket.wait(1, 30.0) == pytest.approx(4001 / (1000 / 60))


def test_settle_refunds_an_overestimate_and_charges_an_underestimate():
    bucket = TokenBucket(600, now=0.0)
    bucket.take(500, 0.0)
    bucket.settle(estimated=500, actual=100, now=0.0)
    assert bucket.level == pytest.approx(500)
    bucket.settle(estimated=10, actual=410, now=0.0)
    assert bucket.level == pytest.approx(100)
    bucket.settle(estimated=1000, actual=0, now=0.0)
    assert bucket.level == pytest.approx(600)  # never above capacity


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(0, 0.0)


@pytest.mark.parametrize(
    "body, tokens",
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}, 100),
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50}, 150),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x" * 400}],
                "max_completion_tokens": 7,
                "max_tokens": 50,
            },
            107,
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10, "n": 3}, 40),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 80}]}]}, 20),
        ({"model": "m", "input": ["a" * 8, "b" * 8]}, 4),
        ({"model": "m", "input": "hello world!", "instructions": "be brief", "max_output_tokens": 20}, 25),
        ({"model": "m", "prompt": "a cat"}, 2),
        ({"model": "m"}, 1),
        ({"model": "m", "messages": [], "max_tokens": True}, 1),
    ],
)
def test_estimate_tokens(body, tokens):
    assert estimate_tokens(body) == tokens
