"""Completion windows: `24h` and any whole hours or days from 1h to 7d, and how long each lasts."""

from __future__ import annotations

import math
import re

from batchgate.errors import InvalidRequest

DEFAULT_WINDOW = "24h"
MIN_HOURS, MAX_HOURS = 1, 7 * 24
_UNIT_HOURS = {"h": 1, "d": 24}
# A whole number without a leading zero, then its unit; nothing around it.
_WINDOW = re.compile(r"([1-9][0-9]{0,3})([hd])")
# The same range as one regular expression, for the API's document (1h…168h, 1d…7d).
WINDOW_PATTERN = r"^(?:(?:[1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])h|[1-7]d)$"


def window_hours(window: object) -> int:
    """The hours a completion window spells; InvalidRequest naming the accepted range otherwise."""
    match = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    hours = int(match[1]) * _UNIT_HOURS[match[2]] if match else 0
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise InvalidRequest(
            f"'completion_window' must be whole hours or days from 1h to 7d (e.g. \"24h\", \"48h\", \"2d\"); "
            f"got {window!r}.",
            param="completion_window",
            code="invalid_completion_window",
        )
    return hours


def window_seconds(window: str, day_seconds: int) -> int:
    """How long `window` lasts when the standard 24h window lasts `day_seconds` (86400 unless a
    deployment or a test shortens time); at least one second."""
    return max(1, math.ceil(window_hours(window) * day_seconds / 24))
