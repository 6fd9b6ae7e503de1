"""Adaptive concurrency for one upstream: additive increase, multiplicative decrease (AIMD).

The limit starts at the cap: a batch gateway's job is to fill the upstream, and the first 429,
5xx or rise in latency brings the limit down within one round trip. It then grows back by about
one request per round trip's worth of successes, never below `floor` nor above `cap`.

"Latency rising" compares a fast average of recent latencies with a slow one (the baseline). LLM
latencies vary a lot from request to request (answer lengths differ), so the baseline is an
average, not a minimum: only a sustained rise that the slow average has not caught up with yet
counts, and a new normal stops counting once it has. A rise must be both relative (`tolerance`)
and absolute (`slack` seconds) so that a fast upstream's jitter is not mistaken for overload.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Aimd:
    cap: int
    floor: int = 1
    backoff: float = 0.7  # limit × this on a congestion signal
    tolerance: float = 2.0  # recent latency / baseline that counts as rising
    slack: float = 0.05  # ... and by at least this many seconds
    limit: float = 0.0
    baseline: float | None = None
    recent: float | None = None
    quiet_until: float = 0.0  # one decrease per round trip: signals from the same overload count once

    def __post_init__(self) -> None:
        if self.floor < 1 or self.cap < self.floor:
            raise ValueError("need 1 <= floor <= cap")
        self.limit = float(self.cap)

    @property
    def current(self) -> int:
        return max(self.floor, int(self.limit))

    def success(self, latency: float, now: float) -> None:
        self._observe(latency)
        if self._latency_rising():
            self._decrease(now)
        else:
            self.limit = min(float(self.cap), self.limit + 1.0 / max(1.0, self.limit))

    def overloaded(self, now: float) -> None:
        """A 429 or 5xx: the upstream says it has too much."""
        self._decrease(now)

    def _decrease(self, now: float) -> None:
        if now < self.quiet_until:
            return
        self.limit = max(float(self.floor), self.limit * self.backoff)
        self.quiet_until = now + (self.recent or 0.0)

    def _observe(self, latency: float) -> None:
        if self.recent is None or self.baseline is None:
            self.recent = self.baseline = latency
            return
        self.recent += (latency - self.recent) * 0.1
        self.baseline += (latency - self.baseline) * 0.01

    def _latency_rising(self) -> bool:
        if self.baseline is None or self.recent is None:
            return False
        return self.recent > self.baseline * self.tolerance and self.recent - self.baseline > self.slack
