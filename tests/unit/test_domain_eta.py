"""batchgate.domain.eta: a running batch's estimated completion, from its own measured rate."""

from __future__ import annotations

import pytest

from batchgate.domain.eta import estimated_completion_at
from batchgate.domain.status import BatchStatus as S


def test_the_rest_goes_at_the_rate_so_far():
    # 100 of 1000 lines in 10 s: 900 more take 90 s.
    assert estimated_completion_at(S.IN_PROGRESS, 1000, 100, in_progress_at=1000, now=1010) == 1100


def test_a_partial_second_rounds_up():
    assert estimated_completion_at(S.IN_PROGRESS, 10, 3, in_progress_at=0, now=1) == 1 + 3  # 7 lines at 3/s: 2.33 s


def test_every_line_done_means_now():
    assert estimated_completion_at(S.IN_PROGRESS, 10, 10, in_progress_at=0, now=50) == 50


@pytest.mark.parametrize(
    ("total", "done", "in_progress_at", "now"),
    [
        (1000, 0, 1000, 1010),  # nothing answered yet: no rate
        (1000, 5, 1000, 1000),  # not a whole second yet
        (0, 0, 1000, 1010),  # the count is not known
        (1000, 5, None, 1010),
    ],
)
def test_null_until_measurable(total, done, in_progress_at, now):
    assert estimated_completion_at(S.IN_PROGRESS, total, done, in_progress_at, now) is None


@pytest.mark.parametrize("status", [s for s in S if s is not S.IN_PROGRESS])
def test_null_outside_in_progress(status):
    assert estimated_completion_at(status, 1000, 500, in_progress_at=1000, now=1010) is None


def test_not_capped_at_the_window():
    # A slow batch: its estimate lies past any 24h window, which says the window ends first.
    assert estimated_completion_at(S.IN_PROGRESS, 1_000_000, 1, in_progress_at=0, now=10) == 10 + 9_999_990
