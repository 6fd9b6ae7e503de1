"""domain/ramp.py: a cold door's window opens over `seconds`, an open one is never held back."""

from __future__ import annotations

import pytest

from batchgate.domain.ramp import Ramp


def test_the_kth_request_at_once_waits_its_share_of_the_ramp():
    ramp = Ramp(seconds=0.1)
    ramp.entered(0, now=50.0)
    assert ramp.wait(limit=10, in_flight=0, now=50.0) == 0.0  # a cold door lets the first in at once
    assert ramp.wait(limit=10, in_flight=1, now=50.0) == pytest.approx(0.01)
    assert ramp.wait(limit=10, in_flight=5, now=50.02) == pytest.approx(0.03)
    assert ramp.wait(limit=10, in_flight=9, now=50.09) == pytest.approx(0.0)


def test_an_open_window_is_not_held_back():
    ramp = Ramp(seconds=0.1)
    ramp.entered(0, now=0.0)
    ramp.entered(3, now=5.0)  # requests in flight all along: the door never went cold
    assert ramp.wait(limit=10, in_flight=9, now=5.0) == 0.0


def test_a_door_idle_for_the_ramp_s_time_ramps_again():
    ramp = Ramp(seconds=0.1)
    ramp.entered(0, now=0.0)
    ramp.left(0, now=1.0)
    ramp.entered(0, now=7.0)  # nothing in flight for 6 s: it opens again from here
    assert ramp.wait(limit=10, in_flight=5, now=7.0) == pytest.approx(0.05)


def test_requests_that_each_end_before_the_next_begins_still_open_the_window():
    """A fast upstream: in flight drops to 0 between requests, but the door never stays idle for long."""
    ramp = Ramp(seconds=0.1)
    now = 0.0
    for _ in range(6):
        ramp.entered(0, now)
        now += 0.02
        ramp.left(0, now)
    assert ramp.wait(limit=10, in_flight=9, now=now) == 0.0, "the ramp went on from the first request"


@pytest.mark.parametrize("in_flight", [10, 12])
def test_at_the_limit_the_limit_decides(in_flight):
    ramp = Ramp(seconds=0.1)
    ramp.entered(0, now=0.0)
    assert ramp.wait(limit=10, in_flight=in_flight, now=0.0) == 0.0


def test_no_ramp_when_its_time_is_zero():
    ramp = Ramp(seconds=0.0)
    ramp.entered(0, now=0.0)
    assert ramp.wait(limit=10, in_flight=9, now=0.0) == 0.0
