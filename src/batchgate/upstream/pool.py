"""Members and pools: how the Router fills upstreams without overrunning them.

A Member is one upstream of a pool with its door (upstream/door.py: fair turns, max in flight, rpm/tpm
buckets, rate-limit pauses: domain/throttle.py), its adaptive concurrency (domain/aimd.py) and its
health (domain/health.py).
A Pool is the members that serve one model: each attempt goes to the healthy, unpaused member with
the least requests in flight or waiting, so a retry may land on another member. When the pool is
cache-aware, a request with a prefix key (domain/prefix.py) goes instead to its group's member on the
ring (domain/affinity.py) while that one is healthy and within its load bound, so one member's prefix
cache serves the whole group.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence

import orjson

from batchgate import metrics
from batchgate.domain.affinity import Ring, choose
from batchgate.domain.aimd import Aimd
from batchgate.domain.fairness import ANONYMOUS, Flow
from batchgate.domain.health import Health
from batchgate.domain.limits import estimate_tokens
from batchgate.domain.prefix import prefix_key
from batchgate.domain.results import Outcome, input_tokens_of, usage_of
from batchgate.domain.retry import RetryPolicy
from batchgate.domain.throttle import Asked, Throttle
from batchgate.settings import ModelLimits, Settings, UpstreamConfig
from batchgate.upstream.base import RetryGate, Stream, StreamingUpstream, send_with_retries
from batchgate.upstream.door import Door

Clock = Callable[[], float]
REFUSALS = frozenset({429, 503})  # "too much": what the adaptive limit listens to


class Member:
    """One upstream of a pool, with its door, its adaptive limit and its health."""

    def __init__(
        self, upstream: StreamingUpstream, config: UpstreamConfig, settings: Settings, clock: Clock = time.monotonic
    ):
        self.upstream = upstream
        self._attempt = upstream.attempt  # bound once: it runs for every request
        self.name = config.name
        self._clock = clock
        cap = config.max_concurrency or settings.max_concurrency_ceiling
        self.aimd = aimd = (
            Aimd(cap=cap, floor=min(config.min_concurrency, cap), tolerated=settings.adaptive_refusal_share)
            if config.adaptive
            else None
        )
        limit = (lambda: aimd.current) if aimd else (lambda: config.max_concurrency)
        self._limit = limit
        throttle = Throttle(
            window=settings.rate_limit_window_seconds,
            share=settings.rate_limit_share,
            least=settings.rate_limit_min_refusals,
            pause_seconds=settings.rate_limit_pause_seconds,
        )
        self.door = Door(
            config.name,
            limit,
            config.rpm,
            config.tpm,
            clock,
            settings.ramp_seconds,
            throttle,
            headroom=settings.interactive_headroom,
        )
        self.health = Health(eject_after=settings.eject_after_failures, cooldown=settings.eject_seconds)
        self.load = 0  # requests in flight here or waiting at its door
        self._latency = metrics.UPSTREAM_LATENCY.labels(config.name)
        # By model: [input tokens, the cached part] of its answers, read by metrics at scrape time.
        self.input_tokens: dict[str, list[int]] = {}

    @property
    def concurrency_limit(self) -> int | None:
        """Requests it may have in flight now: the adaptive limit, or the fixed cap (None: no cap)."""
        return self._limit()

    def available(self, now: float) -> bool:
        return self.health.available(now) and now >= self.door.throttle.free_at

    async def call(
        self, endpoint: str, body: dict, payload: bytes, flow: Flow, tokens: int, model: Door | None
    ) -> tuple[Outcome, Asked | None]:
        """One attempt through the model's door (if it has limits) and this upstream's door."""
        self.load += 1
        doors: list[Door] = []
        learned = False
        started: float | None = None
        try:
            if model is not None:
                await model.enter(flow, tokens)
                doors.append(model)
            await self.door.enter(flow, tokens)
            doors.append(self.door)
            started = self._clock()
            outcome, asked = await self._attempt(endpoint, body, payload)
            self._latency.observe(self._clock() - started)
            self._learn(outcome, asked, started, tokens, doors)
            if outcome.ok:
                self._count_tokens(body.get("model"), outcome.body)
            learned = True
            return outcome, asked
        finally:
            if not learned:
                self.health.unanswered()
                if started is not None:
                    self.door.throttle.unanswered(started)
            self._release(doors)

    async def stream(self, endpoint: str, body: dict, flow: Flow, tokens: int, model: Door | None) -> Outcome | Stream:
        """A streamed answer stays in flight at the doors until its last event is passed on."""
        self.load += 1
        doors: list[Door] = []
        opened: Outcome | Stream | None = None
        try:
            for door in (model, self.door):
                if door is not None:
                    await door.enter(flow, tokens)
                    doors.append(door)
            opened = await self.upstream.stream(endpoint, body)
        finally:
            if not isinstance(opened, Stream):
                self._release(doors)
        return opened if isinstance(opened, Outcome) else Stream(self._held(opened.events, doors))

    async def _held(self, events: AsyncGenerator[bytes, None], doors: list[Door]) -> AsyncGenerator[bytes, None]:
        try:
            async for event in events:
                yield event
        finally:
            self._release(doors)

    def _release(self, doors: list[Door]) -> None:
        self.load -= 1
        for door in doors:
            door.leave()

    def _count_tokens(self, model: object, answer: object) -> None:
        given, cached = input_tokens_of(answer)
        if given:
            counts = self.input_tokens.get(str(model))
            if counts is None:
                counts = self.input_tokens[str(model)] = [0, 0]
            counts[0] += given
            counts[1] += cached

    def _learn(self, outcome: Outcome, asked: Asked | None, sent_at: float, tokens: int, doors: list[Door]) -> None:
        """Feed one outcome to the adaptive limit, the rate-limit pause, health and the token buckets.

        Only refusals speak of load: a 500, a reset or a timeout is one request's misfortune, retried
        on its own, and shrinking everyone's window for it would stall the whole upstream.
        """
        now = self._clock()
        status = outcome.status_code
        accounted = False
        if self.aimd is not None:
            if status in REFUSALS:
                accounted = self.aimd.refused(now, sent_at)
            elif outcome.ok:
                self.aimd.success(now - sent_at, now)
        if status is None:
            self.door.throttle.unanswered(sent_at)  # no answer is no sign either way
        else:
            refused = status == 429
            self.door.throttle.answered(now, sent_at, refused, refused and not accounted, asked)
        if outcome.error_code is not None or (status is not None and status >= 500):
            self.health.failed(now)
        else:
            self.health.succeeded()
        if tokens:
            actual = usage_of(outcome.body).total_tokens if outcome.ok else 0
            for door in doors:
                door.settle(tokens, actual or (tokens if outcome.ok else 0))


class Affinity:
    """Where a prefix group goes in a pool: its members on a ring, and how far over the mean load one may go."""

    def __init__(self, members: Sequence[Member], load_factor: float):
        self.ring = Ring([member.name for member in members])
        self.load_factor = load_factor


class Pool:
    """The members serving one model, plus the model's own door when a [[limits]] table names it.

    `affinity` (only for a pool of several members) sends each prefix group to one member."""

    def __init__(
        self,
        members: Sequence[Member],
        model: Door | None,
        policy: RetryPolicy,
        clock: Clock = time.monotonic,
        affinity: Affinity | None = None,
    ):
        self.members = tuple(members)
        self.model = model
        self._policy = policy
        self._clock = clock
        self._affinity = affinity if len(self.members) > 1 else None
        self._counts_tokens = (model is not None and model.counts_tokens) or any(
            member.door.counts_tokens for member in self.members
        )

    def key_of(self, endpoint: str, body: dict) -> bytes | None:
        """The request's prefix group, when this pool places by groups (a lone member never pays for it)."""
        return prefix_key(endpoint, body) if self._affinity is not None else None

    def pick(self, avoid: Member | None = None, key: bytes | None = None) -> Member:
        """Of the members that may take a request (`avoid` only if no other may): the group's member on the
        ring within its load bound when there is a `key`, else the least loaded; if none may, the one free
        soonest."""
        if len(self.members) == 1:
            return self.members[0]  # a lone upstream is tried even when out: there is no one else to ask
        now = self._clock()
        candidates = [member for member in self.members if member.available(now)]
        if avoid is not None and len(candidates) > 1:
            candidates = [member for member in candidates if member is not avoid] or candidates
        if not candidates:  # all out: better to try one than to fail every line without asking
            return min(
                self.members,
                key=lambda member: (max(member.health.ejected_until, member.door.throttle.free_at), member.load),
            )
        if key is not None and self._affinity is not None:
            member = self._by_group(key, candidates, self._affinity)
        elif len(candidates) > 1:
            member = min(candidates, key=lambda member: member.load)
        else:
            member = candidates[0]
        member.health.sending(now)
        return member

    def _by_group(self, key: bytes, candidates: list[Member], affinity: Affinity) -> Member:
        eligible = [member in candidates for member in self.members]
        loads = [member.load for member in self.members]
        index = choose(affinity.ring, key, loads, eligible, affinity.load_factor)
        return candidates[0] if index is None else self.members[index]  # None cannot be: one is eligible

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None, flow: Flow = ANONYMOUS) -> Outcome:
        payload = orjson.dumps(body)
        tokens = estimate_tokens(body) if self._counts_tokens else 0
        key = self.key_of(endpoint, body)

        refused_by: Member | None = None  # the member whose Retry-After the next try must not ignore
        member = self.members[0]  # the one the last try went to

        async def attempt() -> tuple[Outcome, float | None]:
            nonlocal refused_by, member
            member = self.pick(avoid=refused_by, key=key)
            outcome, asked = await member.call(endpoint, body, payload, flow, tokens, self.model)
            retry_after = asked.retry_after if asked is not None else None
            refused_by = member if retry_after else None
            if retry_after and self._another_available(member):
                return outcome, None  # a Retry-After speaks for its own upstream: another member takes the retry
            return outcome, retry_after  # the retry's floor

        return await send_with_retries(attempt, self._policy, gate, self.members[0].name, lambda: member.name)

    def _another_available(self, member: Member) -> bool:
        now = self._clock()
        return any(other is not member and other.available(now) for other in self.members)

    async def stream(self, endpoint: str, body: dict, flow: Flow = ANONYMOUS) -> Outcome | Stream:
        """Opened on the group's member or the least loaded; retries before the first event are the upstream's own."""
        tokens = estimate_tokens(body) if self._counts_tokens else 0
        return await self.pick(key=self.key_of(endpoint, body)).stream(endpoint, body, flow, tokens, self.model)


def model_door(limits: ModelLimits, model: str, clock: Clock = time.monotonic) -> Door:
    cap = limits.max_concurrency
    return Door(f"model {model}", lambda: cap, limits.rpm, limits.tpm, clock)
