"""What an upstream is to the rest of batchgate: something that answers one request."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from batchgate import metrics
from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy, is_retryable_status
from batchgate.domain.throttle import Asked
from batchgate.errors import Abandoned

log = logging.getLogger("batchgate.upstream")

# Asked before each retry: False means the caller no longer wants an answer (send raises Abandoned).
RetryGate = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class PrefixCache:
    """How an upstream reuses the computed start of a prompt, which decides how prefix groups are sent.

    `slots` None: one cache serves every request it runs (vLLM, SGLang), so a group sent together, its
    first line ahead, finds it warm. A number: a cache per slot, that many (llama.cpp keeps each slot's
    last prompt), where two lines of a group running at once each compute the prefix, so groups take
    turns. 0: no cache at all (an embedding model), so groups are not looked for.
    """

    slots: int | None

    @property
    def shared(self) -> bool:
        return self.slots is None


SHARED_CACHE = PrefixCache(None)
NO_CACHE = PrefixCache(0)


class Upstream(Protocol):
    name: str

    def prefix_cache(self, endpoint: str) -> PrefixCache:
        """How it reuses the start of prompts on `endpoint`."""
        ...

    async def attempt(self, endpoint: str, body: dict, payload: bytes) -> tuple[Outcome, Asked | None]:
        """One try, no retry: the outcome and what the upstream asked of us (Retry-After, a spent rate window).

        `payload` is `body` serialized once by the caller; a kind uses whichever form it needs. The pool
        calls this behind the doors and does the retrying itself. Never raises for upstream trouble.
        """
        ...

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """Send one request (retries included) and say what finally happened. Never raises for upstream trouble."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Stream:
    """An answer that arrives in pieces: server-sent event bytes, passed on as they come."""

    events: AsyncGenerator[bytes, None]


class StreamingUpstream(Upstream, Protocol):
    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        """Open a streamed answer (`stream: true`), or say why there is none; retries happen before it opens."""
        ...

    async def models(self) -> list[str]:
        """The model names this upstream says it serves (may be empty if it cannot tell)."""
        ...


# One try: the answer, and how long the upstream asked us to wait before the next one (Retry-After).
# Generic in the answer: a plain send's attempts give Outcomes only, so its retries return an Outcome.
Answer = TypeVar("Answer", bound="Outcome | Stream")
Attempt = Callable[[], Awaitable[tuple[Answer, "float | None"]]]


def worth_retrying(answer: Outcome | Stream) -> bool:
    """An opened stream is final; an outcome is retried when it failed in a way that may pass."""
    return (
        isinstance(answer, Outcome)
        and not answer.ok
        and (
            answer.error_code is not None
            or (answer.status_code is not None and is_retryable_status(answer.status_code))
        )
    )


async def send_with_retries(
    attempt: Attempt[Answer],
    policy: RetryPolicy,
    gate: RetryGate | None,
    name: str,
    answered_by: Callable[[], str] | None = None,
) -> Answer:
    """Try until an answer is final or attempts run out, backing off between tries (Retry-After is a floor).

    `answered_by` names the upstream that gave the last answer, when a pool spreads tries over several.
    """
    tries = 0
    while True:
        tries += 1
        answer, retry_after = await attempt()
        if not worth_retrying(answer) or not policy.should_retry(tries):
            return answer
        assert isinstance(answer, Outcome)  # worth_retrying: a stream is final
        reason, upstream = answer.error_code or str(answer.status_code), answered_by() if answered_by else name
        metrics.count_retry(upstream, reason)
        delay = policy.delay(tries, random.random(), retry_after)
        log.debug("attempt %d failed (%s); retrying in %.2fs", tries, reason, delay, extra={"upstream": upstream})
        await asyncio.sleep(delay)
        if gate is not None and not await gate():
            raise Abandoned(f"a retry to {name!r} was abandoned: its run stopped")
