"""domain/health.py: an upstream out after failures in a row, probed back in."""

from __future__ import annotations

from batchgate.domain.health import Health


def test_failures_in_a_row_eject_and_a_success_in_between_forgives():
    health = Health(eject_after=3, cooldown=5.0)
    health.failed(0.0)
    health.failed(0.0)
    health.succeeded()
    health.failed(0.0)
    health.failed(0.0)
    assert health.available(0.0)
    health.failed(1.0)
    assert health.ejected and not health.available(1.0) and not health.available(5.9)


def test_after_the_cooldown_exactly_one_probe_goes():
    health = Health(eject_after=1, cooldown=5.0)
    health.failed(0.0)
    assert health.available(5.0)
    health.sending(5.0)
    assert not health.available(5.0)  # the probe is out: nobody else yet
    health.succeeded()
    assert not health.ejected and health.available(5.0)


def test_a_failed_probe_ejects_for_twice_as_long_up_to_a_ceiling():
    health = Health(eject_after=1, cooldown=5.0, max_cooldown=12.0)
    health.failed(0.0)
    health.sending(5.0)
    health.failed(5.0)
    assert not health.available(14.9) and health.available(15.0)
    health.sending(15.0)
    health.failed(15.0)
    assert not health.available(26.9) and health.available(27.0)  # capped at 12 s


def test_late_failures_of_requests_sent_before_the_ejection_do_not_extend_it():
    health = Health(eject_after=1, cooldown=5.0)
    health.failed(0.0)
    health.failed(4.0)
    health.failed(4.5)
    assert health.available(5.0)


def test_a_probe_that_never_answered_lets_another_probe_go():
    health = Health(eject_after=1, cooldown=5.0)
    health.failed(0.0)
    health.sending(5.0)
    assert not health.available(5.0)
    health.unanswered()  # its line was cancelled while it waited
    assert health.available(5.1) and health.ejected
