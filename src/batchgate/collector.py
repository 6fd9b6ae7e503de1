"""Keeping Python's cycle collector from stopping the event loop while lines are in flight.

A full pass of the collector walks every object the process holds, and nearly all of them are
the modules, classes and functions loaded at start, which live as long as the server: 10-30 ms
each with the loop stopped, while about a hundred answers wait for their slot's next line. Once
the server is up, those objects are frozen out of the collector's sight (gc.freeze), so its passes
walk only what came after; the youngest generation is also collected less often, as the hot path
makes no reference cycles and each pass over it costs a turn of the loop.
"""

from __future__ import annotations

import gc

YOUNGEST_THRESHOLD = 10_000  # allocations between passes over the youngest generation (Python's default: 700)


def freeze_startup_objects() -> None:
    """Call once everything the server keeps for good is loaded."""
    gc.collect()  # what startup left for the collector goes now, not frozen in for good
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
