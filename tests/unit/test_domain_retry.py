"""batchgate.domain.retry: backoff delays, attempt budget, retryable statuses, Retry-After parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from batchgate.domain.retry import Backoffs, RetryPolicy, is_retryable_status, parse_retry_after

POLICY = RetryPolicy(max_attempts=5, base_seconds=0.5, max_seconds=60.0)
ALMOST_ONE = 1 - 1e-9


# --- RetryPolicy.delay ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt, ceiling", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0)])
def test_delay_bounds_for_jitter_zero_and_almost_one(attempt, ceiling):
    low = POLICY.delay(attempt, 0.0)
    high = POLICY.delay(attempt, ALMOST_ONE)
    assert low == pytest.approx(ceiling / 2)
    assert high == pytest.approx(ceiling)
    assert high <= ceiling


def test_delay_is_monotonic_in_jitter():
    delays = [POLICY.delay(3, j / 10) for j in range(10)]
    assert delays == sorted(delays)
    assert len(set(delays)) == 10


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, ALMOST_ONE])
def test_delay_doubles_each_attempt_until_the_cap(jitter):
    policy = RetryPolicy(max_attempts=20, base_seconds=0.1, max_seconds=1000.0)
    for attempt in range(1, 12):
        assert policy.delay(attempt + 1, jitter) == pytest.approx(2 * policy.delay(attempt, jitter))


@pytest.mark.parametrize("attempt", [8, 9, 10, 20, 50, 200])
def test_delay_is_capped_at_max_seconds(attempt):
    assert POLICY.delay(attempt, 0.0) == pytest.approx(30.0)
    assert POLICY.delay(attempt, ALMOST_ONE) <= 60.0
    assert POLICY.delay(attempt, ALMOST_ONE) == pytest.approx(60.0)


def test_delay_never_exceeds_max_seconds_without_retry_after():
    policy = RetryPolicy(max_attempts=100, base_seconds=1.0, max_seconds=7.0)
    for attempt in range(1, 40):
        for jitter in (0.0, 0.3, 0.7, ALMOST_ONE):
            delay = policy.delay(attempt, jitter)
            assert 0 < delay <= 7.0


def test_delay_for_a_very_late_attempt_is_still_capped():
    policy = RetryPolicy(max_attempts=5000, base_seconds=0.5, max_seconds=60.0)
    assert policy.delay(1100, 0.5) <= 60.0


def test_retry_after_is_a_floor():
    # Backoff of attempt 1 is at most 0.5 s; the server asked for 10 s.
    assert POLICY.delay(1, 0.0, retry_after=10.0) == 10.0
    assert POLICY.delay(1, ALMOST_ONE, retry_after=10.0) == 10.0


def test_retry_after_smaller_than_backoff_does_not_shorten_it():
    assert POLICY.delay(5, 0.0, retry_after=1.0) == pytest.approx(4.0)
    assert POLICY.delay(5, 0.0, retry_after=0.0) == pytest.approx(4.0)


def test_retry_after_above_max_seconds_still_wins():
    assert POLICY.delay(1, 0.5, retry_after=120.0) == 120.0


# --- should_retry ----------------------------------------------------------------------------------------------


def test_should_retry_until_the_last_attempt():
    assert [POLICY.should_retry(a) for a in range(1, 7)] == [True, True, True, True, False, False]


def test_single_attempt_policy_never_retries():
    assert not RetryPolicy(max_attempts=1).should_retry(1)


def test_default_policy():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_seconds, policy.max_seconds) == (5, 0.5, 60.0)


# --- is_retryable_status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529, 599])
def test_retryable_statuses(status):
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 201, 301, 400, 401, 403, 404, 405, 413, 422, 600])
def test_not_retryable_statuses(status):
    assert not is_retryable_status(status)


# --- parse_retry_after -----------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize("headers", [None, {}, {"Content-Type": "application/json"}])
def test_no_retry_after(headers):
    assert parse_retry_after(headers, NOW) is None


@pytest.mark.parametrize("value, seconds", [("5", 5.0), ("0", 0.0), ("1.5", 1.5), (" 7 ", 7.0), ("120", 120.0)])
def test_retry_after_seconds(value, seconds):
    assert parse_retry_after({"Retry-After": value}, NOW) == seconds


def test_negative_retry_after_is_zero():
    assert parse_retry_after({"Retry-After": "-3"}, NOW) == 0.0


@pytest.mark.parametrize("value, seconds", [("250", 0.25), ("1500", 1.5), ("0", 0.0), ("-10", 0.0)])
def test_retry_after_ms(value, seconds):
    assert parse_retry_after({"retry-after-ms": value}, NOW) == seconds


def test_retry_after_ms_wins_over_retry_after():
    assert parse_retry_after({"Retry-After": "30", "retry-after-ms": "100"}, NOW) == 0.1


def test_garbage_retry_after_ms_falls_back_to_retry_after():
    assert parse_retry_after({"Retry-After": "3", "retry-after-ms": "soon"}, NOW) == 3.0


def test_http_date_is_relative_to_now():
    when = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert parse_retry_after(headers, when - 30) == pytest.approx(30.0)
    assert parse_retry_after(headers, when - 0.5) == pytest.approx(0.5)


def test_http_date_in_the_past_is_zero():
    when = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, when + 100) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "Wed, 99 Foo 2015", "5 seconds", "tomorrow"])
def test_garbage_retry_after_is_none(value):
    assert parse_retry_after({"Retry-After": value}, NOW) is None


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e999"])
def test_non_finite_retry_after_is_rejected(value):
    result = parse_retry_after({"Retry-After": value}, NOW)
    assert result is None or math.isfinite(result)


@pytest.mark.parametrize("name", ["retry-after", "Retry-After", "RETRY-AFTER", "rEtRy-AfTeR"])
def test_retry_after_header_name_is_case_insensitive(name):
    assert parse_retry_after({name: "4"}, NOW) == 4.0


@pytest.mark.parametrize("name", ["retry-after-ms", "Retry-After-Ms", "RETRY-AFTER-MS"])
def test_retry_after_ms_header_name_is_case_insensitive(name):
    assert parse_retry_after({name: "2000"}, NOW) == 2.0


def test_a_batch_failing_in_a_row_rests_twice_as_long_each_time_up_to_the_most():
    backoffs = Backoffs(base=0.5, most=3.0)
    assert backoffs.failed("b1", now=100.0) == (1, 1.0)
    assert backoffs.resting("b1", now=100.9) and not backoffs.resting("b1", now=101.0)
    assert backoffs.failed("b1", now=101.0) == (2, 2.0)
    assert backoffs.failed("b1", now=103.0) == (3, 3.0), "capped at the most"
    assert backoffs.all_resting(now=104.0) == ["b1"] and not backoffs.resting("b2", now=104.0)
    backoffs.succeeded("b1")
    assert backoffs.all_resting(now=104.0) == [] and backoffs.failed("b1", now=200.0) == (1, 1.0)
