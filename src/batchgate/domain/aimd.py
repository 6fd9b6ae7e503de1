"""Adaptive concurrency for one upstream: additive increase, multiplicative decrease (AIMD).

The limit starts at the cap: a batch gateway's job is to fill the upstream, and refusals or a
rise in latency bring it down within one round trip. It then grows back by about one request per
round trip's worth of successes, never below `floor` nor above `cap`.

A refusal (429, 503) lowers the limit only when refusals are more than a sporadic share of recent
answers (`tolerated`): an upstream that refuses whatever exceeds its capacity refuses most of what
is sent over it, while one that refuses 5% of requests whatever the load is not helped by fewer
in flight, and cutting for each would starve it. Each cut answers the requests sent before it:
only a signal from a request sent after the latest cut may cut again, as TCP does, so one overload
seen by a whole window of requests counts once. Errors and timeouts say nothing about load here.

"Latency rising" compares a fast average of recent latencies with a slow one (the baseline). LLM
latencies vary a lot from request to request (answer lengths differ), so the baseline is an
average, not a minimum: only a sustained rise that the slow average has not caught up with yet
counts, and a new normal stops counting once it has. A rise must be both relative (`tolerance`)
and absolute (`slack` seconds) so that a fast upstream's jitter is not mistaken for overload.
"""

from __future__ import annotations

from dataclasses import dataclass

SHARE_WEIGHT = 1 / 32  # the refused share follows about the last 32 answers: 5% sporadic refusals never reach
# a quarter of them (in simulation), while an upstream refusing its overflow gets there within ten refusals


@dataclass
class Aimd:
    cap: int
    floor: int = 1
    backoff: float = 0.7  # limit × this on a congestion signal
    tolerance: float = 2.0  # recent latency / baseline that counts as rising
    slack: float = 0.05  # ... and by at least this many seconds
    tolerated: float = 0.25  # share of recent answers refused that is sporadic, not a capacity
    limit: float = 0.0
    baseline: float | None = None
    recent: float | None = None
    refused_share: float = 0.0  # a fast average of 1 per refusal, 0 per success
    cut_at: float = float("-inf")  # when the limit was last lowered

    def __post_init__(self) -> None:
        if self.floor < 1 or self.cap < self.floor:
            raise ValueError("need 1 <= floor <= cap")
        self.limit = float(self.cap)

    @property
    def current(self) -> int:
        return max(self.floor, int(self.limit))

    def success(self, latency: float, now: float) -> None:
        self._observe(latency)
        self.refused_share -= self.refused_share * SHARE_WEIGHT
        if self._latency_rising():
            self._cut(now, sent_at=now - latency)
        else:
            self.limit = min(float(self.cap), self.limit + 1.0 / max(1.0, self.limit))

    def refused(self, now: float, sent_at: float) -> bool:
        """A 429 or 503 to a request sent at `sent_at`: does the limit account for it?

        True when it was sent before the latest cut (which already answered it) or it cuts now;
        False when it is sporadic, or the limit is at its floor with nothing left to cut.
        """
        self.refused_share += (1.0 - self.refused_share) * SHARE_WEIGHT
        if sent_at < self.cut_at:
            return True
        if self.refused_share < self.tolerated or self.limit <= self.floor:
            return False
        return self._cut(now, sent_at)

    def _cut(self, now: float, sent_at: float) -> bool:
        if sent_at < self.cut_at:
            return False
        self.limit = max(float(self.floor), self.limit * self.backoff)
        self.cut_at = now
        return True

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
