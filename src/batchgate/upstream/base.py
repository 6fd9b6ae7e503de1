"""What an upstream is to the rest of batchgate: something that answers one request."""

from __future__ import annotations

from typing import Protocol

from batchgate.domain.results import Outcome


class Upstream(Protocol):
    name: str

    async def send(self, endpoint: str, body: dict) -> Outcome:
        """Send one request (retries included) and say what finally happened. Never raises for upstream trouble."""
        ...

    async def close(self) -> None: ...
