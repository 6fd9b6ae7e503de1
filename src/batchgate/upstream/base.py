"""What an upstream is to the rest of batchgate: something that answers one request."""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable, Protocol

from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy, is_retryable_status
from batchgate.errors import Abandoned

# Asked before each retry: False means the caller no longer wants an answer (send raises Abandoned).
RetryGate = Callable[[], Awaitable[bool]]


class Upstream(Protocol):
    name: str

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """Send one request (retries included) and say what finally happened. Never raises for upstream trouble."""
        ...

    async def close(self) -> None: ...


# One try: the outcome, and how long the upstream asked us to wait before the next one (Retry-After).
Attempt = Callable[[], Awaitable[tuple[Outcome, "float | None"]]]


def worth_retrying(outcome: Outcome) -> bool:
    return not outcome.ok and (outcome.error_code is not None or is_retryable_status(outcome.status_code))


async def send_with_retries(attempt: Attempt, policy: RetryPolicy, gate: RetryGate | None, name: str) -> Outcome:
    """Try until an answer is final or attempts run out, backing off between tries (Retry-After is a floor)."""
    tries = 0
    while True:
        tries += 1
        outcome, retry_after = await attempt()
        if not worth_retrying(outcome) or not policy.should_retry(tries):
            return outcome
        await asyncio.sleep(policy.delay(tries, random.random(), retry_after))
        if gate is not None and not await gate():
            raise Abandoned(f"a retry to {name!r} was abandoned: its run stopped")
