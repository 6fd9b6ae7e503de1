"""domain/throttle.py: when 429s pause a whole upstream, and how one probe reopens it."""

from __future__ import annotations

import pytest

from batchgate.domain.throttle import PROBE_OUT, Asked, Throttle, parse_duration, window_spent


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1.5s", 1.5),
        ("1h2m3s", 3723.0),
        ("2", 2.0),
        ("0.25", 0.25),
        ("500us", 0.0005),
    ],
)
def test_reset_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "s", "5s later"])
def test_unreadable_durations(text):
    assert parse_duration(text) is None


def test_a_spent_window_is_read_from_the_headers():
    assert window_spent({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 1.0) == 360.0
    assert (
        window_spent(
            {
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "20ms",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1s",
            },
            1.0,
        )
        == 1.0
    )
    assert window_spent({"x-ratelimit-remaining-requests": "0"}, 2.5) == 2.5  # spent, reset unreadable: the fallback
    assert window_spent({"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "1s"}, 1.0) is None
    assert window_spent({}, 1.0) is None


def answers(throttle: Throttle, now: float, refused: int, ok: int) -> None:
    for _ in range(ok):
        throttle.answered(now, now - 0.01, False, False, None)
    for _ in range(refused):
        throttle.answered(now, now - 0.01, True, True, Asked(retry_after=2.0))


def test_a_single_429_pauses_nobody():
    throttle = Throttle(least=5)
    answers(throttle, 1.0, refused=1, ok=0)
    assert throttle.wait(1.0) == 0.0


def test_sporadic_429s_among_answers_pause_nobody():
    throttle = Throttle(least=5, share=0.5)
    for second in range(10):
        answers(throttle, float(second), refused=5, ok=95)  # 5% of answers, every second
        answers(throttle, second + 0.5, refused=5, ok=95)
    assert throttle.wait(10.0) == 0.0


def test_clustered_429s_pause_for_their_retry_after():
    throttle = Throttle(least=5, share=0.5)
    answers(throttle, 1.0, refused=4, ok=2)
    assert throttle.wait(1.0) == 0.0
    answers(throttle, 1.1, refused=1, ok=0)  # five of seven answers within the window
    assert throttle.wait(1.1) == pytest.approx(2.0)


def test_429s_spread_beyond_the_window_are_no_cluster():
    throttle = Throttle(window=1.0, least=5, share=0.5)
    for i in range(20):
        answers(throttle, i * 1.0, refused=2, ok=0)  # two a second: fewer than five in any window
    assert throttle.wait(20.0) == 0.0


def test_429s_the_adaptive_limit_accounts_for_are_not_counted():
    throttle = Throttle(least=5)
    for _ in range(50):
        throttle.answered(1.0, 0.9, True, False, None)  # an upstream at capacity, answered by a lower limit
    assert throttle.wait(1.0) == 0.0


def test_a_spent_window_pauses_at_once_until_its_reset():
    throttle = Throttle()
    throttle.answered(1.0, 0.9, False, False, Asked(spent_for=6.0))  # even a 200 may say it was the last
    assert throttle.wait(2.0) == pytest.approx(5.0)


def test_after_a_pause_one_probe_goes_alone_and_its_success_reopens():
    throttle = Throttle(least=5, pause_seconds=1.0)
    throttle.answered(0.0, 0.0, True, True, Asked(spent_for=1.0))
    assert throttle.wait(0.5) == pytest.approx(0.5)
    throttle.entered(1.2)  # the probe
    assert throttle.wait(1.2) == PROBE_OUT
    throttle.answered(1.25, -0.1, True, True, None)  # a late answer sent before the pause decides nothing
    assert throttle.wait(1.25) == PROBE_OUT
    throttle.answered(1.3, 1.2, False, False, None)  # the probe's answer
    assert throttle.wait(1.3) == 0.0


def test_a_refused_probe_pauses_again():
    throttle = Throttle(pause_seconds=1.0)
    throttle.answered(0.0, 0.0, True, True, Asked(spent_for=1.0))
    throttle.entered(1.0)
    throttle.answered(1.1, 1.0, True, True, Asked(retry_after=3.0))
    assert throttle.wait(1.1) == pytest.approx(3.0)
    throttle.entered(4.2)
    assert throttle.wait(4.2) == PROBE_OUT


def test_a_probe_that_got_no_answer_lets_another_go():
    throttle = Throttle()
    throttle.answered(0.0, 0.0, True, True, Asked(spent_for=1.0))
    throttle.entered(1.0)
    throttle.unanswered(1.0)  # timed out, or its connection reset
    assert throttle.wait(1.1) == 0.0
    throttle.entered(1.1)
    assert throttle.wait(1.1) == PROBE_OUT


def test_evidence_from_before_a_pause_is_not_counted_again():
    throttle = Throttle(least=5, share=0.5, pause_seconds=1.0)
    answers(throttle, 0.0, refused=5, ok=0)  # pause until 2.0 (their Retry-After)
    throttle.entered(2.0)
    throttle.answered(2.1, 2.0, False, False, None)  # reopened
    for _ in range(20):
        throttle.answered(2.2, 1.5, True, True, None)  # stragglers sent before the reopening
    assert throttle.wait(2.2) == 0.0
