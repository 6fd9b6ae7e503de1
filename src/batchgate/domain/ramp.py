"""Opening a cold door's window over a short time instead of all at once.

A batch's first window would otherwise leave as one wall of requests. An upstream whose latency
is steady answers a wall as a wall, round after round, and each round the gateway has hundreds of
answers to turn around at once: the last of them waits for all the others before its slot sends
its next line. Opened over `seconds`, the window's requests leave spread out, their answers come
back spread out, and each is turned around as it arrives. A window that is already open is never
held back: a door is cold only once nothing has been in flight there for `seconds` (requests to a
fast upstream may each end before the next begins, and the window must still open).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ramp:
    seconds: float
    opened_at: float = 0.0  # when the door last opened from cold
    idle_since: float = float("-inf")  # when nothing was last left in flight

    def entered(self, in_flight_before: int, now: float) -> None:
        if in_flight_before == 0 and now - self.idle_since >= self.seconds:
            self.opened_at = now

    def left(self, in_flight_after: int, now: float) -> None:
        if in_flight_after == 0:
            self.idle_since = now

    def wait(self, limit: int, in_flight: int, now: float) -> float:
        """0 if one more request may enter now, else the seconds until it may.

        The k-th request in flight at once may enter `seconds × (k-1) / limit` after the door
        opened: the first at once, the whole window after `seconds`.
        """
        if self.seconds <= 0 or in_flight == 0 or in_flight >= limit:
            return 0.0  # no ramp, nothing in flight (one may always go), or the limit itself decides
        return max(0.0, self.opened_at + self.seconds * in_flight / limit - now)
