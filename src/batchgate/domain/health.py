"""Whether an upstream of a pool should get requests: out after failures in a row, probed back in.

Closed (healthy) → `eject_after` failed attempts in a row → ejected for `cooldown` seconds →
one probe request may go → success: healthy again; failure: ejected again for twice as long
(up to `max_cooldown`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Health:
    eject_after: int = 5
    cooldown: float = 5.0
    max_cooldown: float = 300.0
    failures: int = 0
    ejected_until: float = 0.0
    ejections: int = 0  # in a row, for the growing cooldown
    probing: bool = False

    def available(self, now: float) -> bool:
        """May a request go here now? (Healthy, or ejected but due for its one probe.)"""
        if self.ejections == 0:
            return True
        return now >= self.ejected_until and not self.probing

    def sending(self, now: float) -> None:
        if self.ejections and now >= self.ejected_until:
            self.probing = True

    def unanswered(self) -> None:
        """A request sent here ended without an outcome (its caller gave up): if it was the probe, allow another."""
        self.probing = False

    def succeeded(self) -> None:
        self.failures, self.ejections, self.probing = 0, 0, False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.probing or (self.ejections == 0 and self.failures >= self.eject_after):
            self.ejections += 1
            self.probing = False
            self.ejected_until = now + min(self.max_cooldown, self.cooldown * 2 ** (self.ejections - 1))

    @property
    def ejected(self) -> bool:
        return self.ejections > 0
