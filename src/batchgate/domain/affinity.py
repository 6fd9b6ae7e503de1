"""Affinity: which member of a pool a prefix group goes to, by consistent hashing with bounded loads.

Each member stands at POINTS places on a hash ring; a key (a prefix group, domain/prefix.py) starts at
its own place and walks clockwise. The first member it meets that may take a request and whose load
stays within the bound takes it, where the bound is ceil(factor × mean load) over the members that may
take it, counting the request being placed (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
with Bounded Loads", 2016). So a group stays on one member while that member is healthy and not
overloaded, and when it is not, the group moves to the next member on the ring, not anywhere: every
other group keeps its member, and so its warm cache.

The walk always finds a member when any may take a request: before the placement the loads of the n
eligible members sum to n × mean − 1, so one of them is below the mean, and one more request keeps it
within ceil(mean) ≤ the bound (factor ≥ 1). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence

POINTS = 100  # places per member: enough for groups to spread within a few percent of evenly
POINT_BYTES = 8


class Ring:
    """Members (by name) at their places on the ring; a member is known by its index in `names`."""

    def __init__(self, names: Sequence[str], points: int = POINTS):
        self.names = tuple(names)
        placed = sorted(
            (_place(f"{name}#{i}".encode()), index) for index, name in enumerate(names) for i in range(points)
        )
        self._places = [place for place, _ in placed]
        self._owners = [owner for _, owner in placed]

    def clockwise(self, key: bytes) -> Iterator[int]:
        """The members met walking clockwise from the key's place, each once."""
        count = len(self._places)
        start = bisect_right(self._places, int.from_bytes(key[:POINT_BYTES].ljust(POINT_BYTES, b"\0"), "big"))
        seen: set[int] = set()
        for step in range(count):
            owner = self._owners[(start + step) % count]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == len(self.names):
                    return

    def owner(self, key: bytes) -> int:
        """The key's member when every member may take it: the first one clockwise."""
        return next(self.clockwise(key))


def bound(loads: Sequence[int], eligible: Sequence[bool], factor: float) -> int:
    """The most requests an eligible member may hold once the new one is placed."""
    count = sum(eligible)
    total = sum(load for load, ok in zip(loads, eligible, strict=True) if ok) + 1
    return math.ceil(factor * total / count) if count else 0


def choose(ring: Ring, key: bytes, loads: Sequence[int], eligible: Sequence[bool], factor: float) -> int | None:
    """The member (index) the key goes to: the first clockwise that is eligible and within the bound.

    `loads[i]` is what member i holds now, `eligible[i]` whether it may take a request at all (healthy,
    not paused, not the one a retry avoids). None when no member is eligible.
    """
    most = bound(loads, eligible, factor)
    for index in ring.clockwise(key):
        if eligible[index] and loads[index] + 1 <= most:
            return index
    return None


def _place(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=POINT_BYTES).digest(), "big")
