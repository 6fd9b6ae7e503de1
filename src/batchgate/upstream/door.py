"""The door in front of an upstream (or a model): who goes next, and when.

A request enters with its flow and estimated tokens and waits until, all at once: its flow's fair
turn has come (domain/fairness.py), fewer than `limit()` requests are in flight (and, while the
door opens from cold, fewer than its ramp allows: domain/ramp.py), the requests- and
tokens-per-minute buckets have room (domain/limits.py), and no rate limit has paused the door
(domain/throttle.py: after a pause, one probe goes alone until its answer reopens the door).
When nothing waits and everything has room, entering costs no task, future or timer.

Interactive calls (a synchronous request, `Flow.interactive`) wait apart from batch lines and go
first: the next free slot is theirs, however many batch lines wait. They may also enter while up to
`headroom` requests over the limit are in flight, so a door that batch lines keep full still lets a
chat call in at once instead of after the next batch line's answer; batch lines only enter below the
limit, so the excess lasts no longer than one batch line's turnaround. The ramp, which spreads a
batch's first window, does not hold them back; rate limits and buckets do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from batchgate import metrics
from batchgate.domain.fairness import FairQueue, Flow
from batchgate.domain.limits import TokenBucket
from batchgate.domain.ramp import Ramp
from batchgate.domain.throttle import Throttle

Waiter = tuple[asyncio.Future, int]  # the future that lets a request in, and its estimated tokens


class _Waiting:
    """The requests of one priority waiting at a door: their fair queue, and the one whose turn has come."""

    __slots__ = ("next", "queue")

    def __init__(self) -> None:
        self.queue: FairQueue[Waiter] = FairQueue()
        self.next: Waiter | None = None  # popped in turn, waiting for room

    def __len__(self) -> int:
        return len(self.queue) + (self.next is not None)

    def head(self) -> Waiter | None:
        """The live request whose turn it is (kept until `take`), skipping callers that went away."""
        while self.next is None or self.next[0].done():
            if not len(self.queue):
                self.next = None
                return None
            self.next = self.queue.pop()
        return self.next

    def take(self) -> None:
        self.next = None


class Door:
    def __init__(
        self,
        name: str,
        limit: Callable[[], int | None],
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        ramp_seconds: float = 0.0,
        throttle: Throttle | None = None,
        headroom: int = 0,
    ):
        self.name = name
        self._limit = limit
        self._clock = clock
        self._ramp = Ramp(ramp_seconds)
        now = clock()
        self._requests = TokenBucket(rpm, now) if rpm else None
        self._tokens = TokenBucket(tpm, now) if tpm else None
        self._interactive = _Waiting()  # served first
        self._batch = _Waiting()
        self.headroom = headroom  # interactive calls may enter this many over the limit
        self._timer: asyncio.TimerHandle | None = None
        self.in_flight = 0
        self.throttle = throttle or Throttle()
        self._rate_waits = metrics.RATE_LIMIT_WAITS.labels(name)
        self._counted: asyncio.Future | None = None  # the request last counted as held back by a rate limit

    @property
    def waiting(self) -> int:
        return len(self._interactive) + len(self._batch)

    @property
    def counts_tokens(self) -> bool:
        return self._tokens is not None

    async def enter(self, flow: Flow, tokens: int = 0) -> None:
        ahead = len(self._interactive) if flow.interactive else self.waiting  # batch lines are never ahead of a call
        if not ahead and self._room(tokens, flow.interactive) == 0.0:
            self._admit(tokens)
            return
        future = asyncio.get_running_loop().create_future()
        (self._interactive if flow.interactive else self._batch).queue.push(flow, (future, tokens))
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # admitted in the same instant as cancelled: give the slot back
            raise

    def leave(self) -> None:
        self.in_flight -= 1
        self._ramp.left(self.in_flight, self._clock())
        self._pump()

    def settle(self, estimated: int, actual: int) -> None:
        """The answer's real token count replaces the estimate taken at the door."""
        if self._tokens is not None and actual != estimated:
            self._tokens.settle(estimated, actual, self._clock())

    def _room(self, tokens: int, interactive: bool = False) -> float:
        """0 when a request of `tokens` may enter now, > 0 seconds to wait for room, -1 when full."""
        limit = self._limit()
        if limit is not None and self.in_flight >= limit + (self.headroom if interactive else 0):
            return -1.0
        now = self._clock()
        wait = self._rate_wait(tokens, now)
        if wait < 0:
            return -1.0  # a probe is out: its answer pumps again
        if limit is not None and not interactive:
            wait = max(wait, self._ramp.wait(limit, self.in_flight, now))
        return max(0.0, wait)

    def _rate_wait(self, tokens: int, now: float) -> float:
        """Seconds a rate-limit pause and the rpm/tpm buckets hold a request back; -1 while a probe is out."""
        wait = self.throttle.wait(now)
        if wait < 0:
            return -1.0
        if self._requests is not None:
            wait = max(wait, self._requests.wait(1, now))
        if self._tokens is not None and tokens:
            wait = max(wait, self._tokens.wait(tokens, now))
        return wait

    def _admit(self, tokens: int) -> None:
        now = self._clock()
        self._ramp.entered(self.in_flight, now)
        self.in_flight += 1
        if self.throttle.until:
            self.throttle.entered(now)
        if self._requests is not None:
            self._requests.take(1, now)
        if self._tokens is not None and tokens:
            self._tokens.take(tokens, now)

    def _pump(self) -> None:
        while True:
            waiting, interactive = self._interactive, True
            head = waiting.head()
            if head is None:
                waiting, interactive = self._batch, False
                head = waiting.head()
                if head is None:
                    return
            future, tokens = head
            wait = self._room(tokens, interactive)
            if wait != 0 and self._counted is not future and self._rate_wait(tokens, self._clock()) != 0:
                self._counted = future
                self._rate_waits.inc()
            if wait < 0:
                return  # a leave() pumps again
            if wait > 0:
                self._wake_in(wait)
                return
            waiting.take()
            self._admit(tokens)
            future.set_result(None)

    def _wake_in(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._pump)
