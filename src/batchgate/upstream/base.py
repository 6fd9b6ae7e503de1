"""What an upstream is to the rest of batchgate: something that answers one request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

from batchgate.domain.results import Outcome

# Asked before each retry: False means the caller no longer wants an answer (send raises Abandoned).
RetryGate = Callable[[], Awaitable[bool]]


class Upstream(Protocol):
    name: str

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """Send one request (retries included) and say what finally happened. Never raises for upstream trouble."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Stream:
    """An answer that arrives in pieces: server-sent event bytes, passed on as they come."""

    events: AsyncIterator[bytes]


class StreamingUpstream(Upstream, Protocol):
    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        """Open a streamed answer (`stream: true`), or say why there is none; retries happen before it opens."""
        ...

    async def models(self) -> list[str]:
        """The model names this upstream says it serves (may be empty if it cannot tell)."""
        ...
