"""When to retry an upstream call, and how long to wait first."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def parse_retry_after(headers: dict[str, str] | None, now: float) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        seconds = _finite(ms)
        if seconds is not None:
            return max(0.0, seconds / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 60.0

    def should_retry(self, attempt: int) -> bool:
        """`attempt` is the 1-based number of the attempt that just failed."""
        return attempt < self.max_attempts

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        """Exponential backoff with equal jitter (half fixed, half random); `jitter` is a uniform draw in [0, 1).

        A server's Retry-After is a floor: we never come back sooner than it asked.
        """
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 64))
        backoff = ceiling / 2 + jitter * ceiling / 2
        return backoff if retry_after is None else max(backoff, retry_after)


class Backoffs:
    """Batches whose runs failed in a row, each resting `base × 2^failures` seconds (at most `most`)
    before it is tried again, so a persistent fault (a broken disk, say) does not spin."""

    def __init__(self, base: float, most: float):
        self._base, self._most = base, most
        self._failed: dict[str, tuple[int, float]] = {}  # batch id → (failures in a row, rest until)

    def failed(self, batch_id: str, now: float) -> tuple[int, float]:
        """Note one more failure; (failures in a row, seconds to rest)."""
        count = self._failed.get(batch_id, (0, 0.0))[0] + 1
        delay = min(self._most, self._base * 2**count)
        self._failed[batch_id] = (count, now + delay)
        return count, delay

    def succeeded(self, batch_id: str) -> None:
        self._failed.pop(batch_id, None)

    def resting(self, batch_id: str, now: float) -> bool:
        return self._failed.get(batch_id, (0, 0.0))[1] > now

    def all_resting(self, now: float) -> list[str]:
        return [batch_id for batch_id, (_, until) in self._failed.items() if until > now]
