"""batchgate.domain.windows: completion windows of whole hours or days from 1h to 7d, and their length."""

from __future__ import annotations

import re

import pytest

from batchgate.domain.windows import WINDOW_PATTERN, window_hours, window_seconds
from batchgate.errors import InvalidRequest


@pytest.mark.parametrize(
    ("window", "hours"), [("1h", 1), ("24h", 24), ("48h", 48), ("2d", 48), ("1d", 24), ("7d", 168), ("168h", 168)]
)
def test_hours_of_a_window(window, hours):
    assert window_hours(window) == hours


@pytest.mark.parametrize("window", ["0h", "0d", "8d", "169h", "1.5h", " 24h", "24h\n", "٢٤h", "24", "h", "1e2h", 24])
def test_a_window_outside_the_range_is_refused(window):
    with pytest.raises(InvalidRequest) as caught:
        window_hours(window)
    assert caught.value.param == "completion_window" and caught.value.code == "invalid_completion_window"
    assert "1h to 7d" in caught.value.message


@pytest.mark.parametrize(("window", "seconds"), [("24h", 86400), ("1h", 3600), ("2d", 172800), ("7d", 604800)])
def test_a_window_lasts_its_hours(window, seconds):
    assert window_seconds(window, 86400) == seconds


def test_a_shortened_day_shortens_every_window_alike_and_never_to_nothing():
    assert window_seconds("24h", 3) == 3
    assert window_seconds("48h", 3) == 6
    assert window_seconds("1h", 3) == 1, "rounded up: a window always lasts"


def test_the_documents_pattern_accepts_exactly_the_windows_the_parser_accepts():
    candidates = [f"{n}{unit}" for n in range(0, 200) for unit in "hd"] + ["01h", " 24h", "1.5h", "24H", ""]
    for window in candidates:
        try:
            window_hours(window)
            accepted = True
        except InvalidRequest:
            accepted = False
        assert bool(re.fullmatch(WINDOW_PATTERN, window)) == accepted, window
