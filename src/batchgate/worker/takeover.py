"""Taking over at once the leases of owners that are provably dead, instead of waiting out their lease.

An owner on our host and in our pid namespace is dead when /proc shows its pid gone, reused by
a newer process, or a zombie (domain/liveness.py). A frozen process is alive: its leases lapse
only with time. A dead process writes nothing, so letting its leases lapse keeps fencing sound.

On PostgreSQL an owner anywhere whose session ended (store/pg_sessions.py) is taken over too, once
it has been seen ended for longer than its own proof of that session lets it dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchgate.domain.liveness import ProcessIdentity, ProcessState, parse_worker_id, past_grace, provably_dead
from batchgate.store import Store
from batchgate.worker.identity import process_state, this_process

log = logging.getLogger("batchgate.worker")
CHECK_SECONDS = 1.0  # how often the owners of live leases are looked at


class Takeover:
    def __init__(
        self,
        store: Store,
        session_grace: float,
        here: ProcessIdentity | None = None,
        probe: Callable[[int], ProcessState | None] = process_state,
    ):
        self._store = store
        self._session_grace = session_grace
        self._ended_since: dict[str, float] = {}  # owner → when we first saw its session ended
        self._here = here if here is not None else this_process()
        self._probe = probe
        self._next_check = float("-inf")

    async def check(self, worker_id: str, now: float) -> list[str]:
        """If a check is due, let the leases of every dead owner lapse; return those owners."""
        if now < self._next_check:
            return []
        self._next_check = now + CHECK_SECONDS
        owners = [owner for owner in await self._store.lease_owners(now) if owner != worker_id]
        dead = [owner for owner in owners if self._dead_here(owner)]
        # Only ids that carry an identity come from versions that hold a session lock.
        judged = [owner for owner in owners if owner not in dead and parse_worker_id(owner) is not None]
        ended = await self._store.ended_sessions(judged)
        dead += past_grace(self._ended_since, ended, now, self._session_grace)
        if dead:
            await self._store.expire_leases(dead, now)
            log.warning("took over the leases of %d dead worker(s): %s", len(dead), ", ".join(dead))
        return dead

    def _dead_here(self, owner: str) -> bool:
        identity = parse_worker_id(owner)
        if identity is None or self._here is None:
            return False
        return provably_dead(identity, self._here, self._probe(identity.pid))
