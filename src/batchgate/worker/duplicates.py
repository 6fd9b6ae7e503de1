"""Repeats sent once: while a batch that asks for it runs on this worker, a repeatable body
(domain/duplicates.py) is sent by its first line and its answer serves every repeat.

Each line still gets its own result row, so a crash, a cancel or an expiry treats a repeat like any
other line (I1–I3): a repeat that is not yet recorded is simply sent again by whoever carries on.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from batchgate.domain.results import Outcome

KEEP = 1024  # answers kept per batch for later repeats; a repeat past them is sent again (memory stays flat, I4)

Send = Callable[[], Awaitable[Outcome | None]]


class Flights:
    """One batch's answers by body key: in flight (a future) or arrived."""

    def __init__(self, keep: int = KEEP):
        self._keep = keep
        self._answers: OrderedDict[bytes, asyncio.Future[Outcome | None]] = OrderedDict()

    async def outcome(self, key: bytes, send: Send) -> tuple[Outcome | None, bool]:
        """The answer for a body, and whether it was another line's (a copy). None: abandoned, as `send` says."""
        while (answer := self._answers.get(key)) is not None:
            self._answers.move_to_end(key)
            outcome = await asyncio.shield(answer)
            if outcome is not None:
                return outcome, True
            # Its sender gave up (its shard stopped): this line, whose shard runs on, sends it itself.
        return await self._lead(key, send), False

    async def _lead(self, key: bytes, send: Send) -> Outcome | None:
        answer: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._answers[key] = answer
        while len(self._answers) > self._keep:
            self._answers.popitem(last=False)
        outcome = None
        try:
            outcome = await send()
            return outcome
        finally:
            answer.set_result(outcome)
            if outcome is None and self._answers.get(key) is answer:
                del self._answers[key]
