"""Rate windows: token buckets for requests and tokens per minute, and a token estimate of a request body.

Pure: every method takes the time `now` (seconds, any monotonic origin) from the caller.
"""

from __future__ import annotations

import math
from typing import Any

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE tokenizers
# Keys that cap an answer's length in the bodies of the four endpoints.
OUTPUT_CAP_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
PROMPT_KEYS = ("messages", "input", "prompt", "instructions")


class TokenBucket:
    """`per_minute` units refill continuously; a full bucket holds one minute's worth.

    A take larger than the bucket is let through once the bucket is full (it then goes into debt),
    so an oversized request waits for a full minute's budget instead of waiting forever.
    Settling with the real cost later moves the level by the difference, possibly below zero.
    """

    def __init__(self, per_minute: float, now: float):
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until `amount` may be taken (0 when it may be taken now)."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def settle(self, estimated: float, actual: float, now: float) -> None:
        """Correct a take of `estimated` once the real cost `actual` is known."""
        self._refill(now)
        self.level = min(self.capacity, self.level + estimated - actual)


def estimate_tokens(body: dict[str, Any]) -> int:
    """Tokens a request will cost, input and output together, before it is sent.

    Input: the prompt's characters / 4. Output: the body's own cap (max_tokens and its kin) when it
    sets one. The estimate is settled against the answer's `usage` afterwards, so it need not be exact.
    """
    output = 0
    for key in OUTPUT_CAP_KEYS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            output = value
            break
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        output *= n
    return estimate_input_tokens(body) + output


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """The input part of estimate_tokens: the prompt's characters / 4, at least 1."""
    chars = 0
    for key in PROMPT_KEYS:
        if key in body:
            chars += _text_length(body[key])
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def _text_length(value: object) -> int:
    """Characters of text inside a prompt value (strings, lists of messages or parts, dicts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(
            _text_length(v)
            for k, v in value.items()
            if k in ("content", "text", "input", "arguments") or isinstance(v, (list, dict))
        )
    return 0
