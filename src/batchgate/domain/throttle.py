"""When a 429 should stop a whole upstream, not just the request that got it.

A single 429 is the request's own business: it retries no sooner than its Retry-After, and the
adaptive limit (domain/aimd.py) hears of it. Pausing every request to an upstream is for a real
rate limit, which shows in one of two ways:

- a header says the window is spent: `x-ratelimit-remaining-requests: 0` (or `-tokens`), with
  `x-ratelimit-reset-requests` (or `-tokens`) saying when it refills ("1s", "6m0s", "20ms");
- 429s cluster: within the last `window` seconds, at least `least` answers were 429s the adaptive
  limit does not account for, and they were at least `share` of the answers.

A 429 that the adaptive limit accounts for (it lowered the limit, or was sent before the limit was
last lowered) is an upstream at its capacity, not out of quota: the lower limit is the answer, and
pausing would only idle the upstream.

A pause ends with one probe: the first request after it goes alone, and the door opens fully once
it gets an answer other than 429. Evidence from requests sent before a pause or a reopening is
spent and not counted again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PROBE_OUT = -1.0  # `Throttle.wait`: a probe is out, nobody else may enter until its answer
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """Seconds in a rate-limit reset value: a Go-style duration ("6m0s", "1.5s", "20ms") or bare seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def window_spent(headers: Mapping[str, str], fallback: float) -> float | None:
    """Seconds until the upstream's rate window refills, if its headers say it is spent (else None).

    `headers` has lower-case names. A spent window without a readable reset waits `fallback`.
    Every answer passes here, so the common case is two dictionary lookups.
    """
    requests = headers.get("x-ratelimit-remaining-requests") == "0"
    tokens = headers.get("x-ratelimit-remaining-tokens") == "0"
    if not (requests or tokens):
        return None
    return max(_reset(headers, kind, fallback) for kind, spent in (("requests", requests), ("tokens", tokens)) if spent)


def _reset(headers: Mapping[str, str], kind: str, fallback: float) -> float:
    seconds = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
    return fallback if seconds is None else seconds


@dataclass(frozen=True, slots=True)
class Asked:
    """What an upstream's answer asked of us: wait before retrying this request, or before sending any."""

    retry_after: float | None = None  # for this request (Retry-After)
    spent_for: float | None = None  # for every request: its rate window is spent for this long


@dataclass
class Throttle:
    """Whether one upstream's door is open, paused, or waiting for its probe's answer."""

    window: float = 1.0  # seconds of answers that 429s must cluster in
    share: float = 0.5  # ... as at least this share of them
    least: int = 20  # ... and at least this many
    pause_seconds: float = 1.0  # a cluster's pause when the upstream names no time
    until: float = 0.0  # paused until then; 0 when open
    probe_out: bool = False
    probe_sent: float = 0.0
    since: float = float("-inf")  # answers to requests sent before this are spent evidence
    # Answers and counted 429s in the current and the previous stretch of `window` seconds.
    started: float = float("-inf")
    answers: int = 0
    refusals: int = 0
    earlier_answers: int = 0
    earlier_refusals: int = 0

    def wait(self, now: float) -> float:
        """0 when a request may enter now, seconds left of a pause, or PROBE_OUT."""
        if not self.until:
            return 0.0
        if self.probe_out:
            return PROBE_OUT
        return max(0.0, self.until - now)

    def entered(self, now: float) -> None:
        """A request went in: after a pause, the first one is the probe."""
        if self.until and now >= self.until and not self.probe_out:
            self.probe_out, self.probe_sent = True, now

    @property
    def free_at(self) -> float:
        """When a new request could enter (for picking a pool member): inf while a probe is out."""
        return float("inf") if self.probe_out else self.until

    def answered(self, now: float, sent_at: float, refused: bool, counted: bool, asked: Asked | None) -> None:
        """Learn from one answer.

        `refused`: it was a 429. `counted`: a 429 the adaptive limit does not account for.
        """
        if asked is None and not refused and not self.probe_out:  # the common case: one more answer
            if now - self.started >= self.window:
                self._roll(now)
            self.answers += 1
            return
        if asked is not None and asked.spent_for is not None:
            self._pause(now, max(asked.spent_for, asked.retry_after or 0.0))
        elif self.probe_out and sent_at >= self.probe_sent:
            self.probe_out = False
            if refused:
                self._pause(now, asked.retry_after if asked and asked.retry_after else self.pause_seconds)
            elif now >= self.until:
                self.until, self.since = 0.0, now
                self._forget(now)
        elif sent_at >= self.since and self._clustered(now, refused and counted):
            self._pause(now, asked.retry_after if asked and asked.retry_after else self.pause_seconds)

    def unanswered(self, sent_at: float) -> None:
        """A request ended without an answer (timeout, reset, its caller gone): if it was the probe, allow another."""
        if self.probe_out and sent_at >= self.probe_sent:
            self.probe_out = False

    def _clustered(self, now: float, refusal: bool) -> bool:
        if now - self.started >= self.window:
            self._roll(now)
        self.answers += 1
        if not refusal:
            return False
        self.refusals += 1
        # The earlier stretch weighs what is left of it inside the last `window` seconds.
        weight = max(0.0, 1.0 - (now - self.started) / self.window)
        refusals = self.refusals + self.earlier_refusals * weight
        answers = self.answers + self.earlier_answers * weight
        return refusals >= self.least and refusals >= self.share * answers

    def _roll(self, now: float) -> None:
        """Start a new stretch of `window` seconds; the one before it still counts for a while."""
        fresh = now - self.started >= 2 * self.window
        self.earlier_answers = 0 if fresh else self.answers
        self.earlier_refusals = 0 if fresh else self.refusals
        self.started, self.answers, self.refusals = now, 0, 0

    def _pause(self, now: float, seconds: float) -> None:
        self.until = max(self.until, now + seconds)
        self.probe_out = False
        self.since = now
        self._forget(now)

    def _forget(self, now: float) -> None:
        self.started, self.answers, self.refusals = now, 0, 0
        self.earlier_answers = self.earlier_refusals = 0
