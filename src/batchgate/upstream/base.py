"""What an upstream is to the rest of batchgate: something that answers one request."""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from batchgate.domain.results import Outcome

# Asked before each retry: False means the caller no longer wants an answer (send raises Abandoned).
RetryGate = Callable[[], Awaitable[bool]]


class Upstream(Protocol):
    name: str

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """Send one request (retries included) and say what finally happened. Never raises for upstream trouble."""
        ...

    async def close(self) -> None: ...
