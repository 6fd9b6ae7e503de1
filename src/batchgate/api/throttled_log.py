"""A log line that an attacker cannot turn into a flood: at most one per interval, with a count of the rest.

Events that a client can cause at will (refused connections, malformed requests, timeouts, accept()
failing for want of file descriptors) would otherwise write one line, or one traceback, each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

NOTICE_INTERVAL_SECONDS = 10.0


class ThrottledLog:
    """Writes the first event of each interval; the events held back are counted and reported at its end."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        interval: float = NOTICE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._window_ends = float("-inf")
        self._held = 0
        self._last_held = ""

    def note(self, message: str) -> None:
        now = self._clock()
        if now >= self._window_ends:
            self._report_held()
            self._window_ends = now + self._interval
            self._logger.log(self._level, message)
            return
        if self._held == 0:
            self._report_held_later(self._window_ends - now)
        self._held += 1
        self._last_held = message

    def _report_held_later(self, delay: float) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: the count goes out with the next event's window instead
            asyncio.get_running_loop().call_later(delay, self._report_held)

    def _report_held(self) -> None:
        if self._held:
            self._logger.log(
                self._level, "and %d more in the last %g s, the last: %s", self._held, self._interval, self._last_held
            )
            self._held = 0
