"""A worker's proof of life on PostgreSQL: a session-level advisory lock keyed by its worker id.

The lock lives on a connection of its own, outside the pool, held for the worker's life. When the
session ends (the process died, or its connection was cut) the server frees the lock, and any
other worker can see it: `pg_try_advisory_xact_lock` on the key succeeds.

A session can also end under a live process (a server restart, a cut connection). So the worker
treats its lock as the ground its leases stand on: it dispatches only while its lock was proven
within the last few seconds (worker/heartbeat.py), and never takes it again under the same id
once lost. Another worker therefore takes over an owner whose lock it found free only after that
proof must have run out (worker/takeover.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import TypedDict

import psycopg

LOCK_CLASS = 0x6267  # "bg": the first key of the two-key advisory locks batchgate holds per worker


class LinkOptions(TypedDict):
    """libpq's TCP options, by name, so that `connect(**LINK_OPTIONS)` type-checks key by key."""

    keepalives: int
    keepalives_idle: int
    keepalives_interval: int
    keepalives_count: int
    tcp_user_timeout: int


# Fail a hung call on a cut connection in seconds, not the minutes of TCP's own retries.
LINK_OPTIONS: LinkOptions = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def lock_key(worker_id: str) -> int:
    """A signed 32-bit key for `worker_id`; a collision only makes a dead owner look alive."""
    return int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:4], "big", signed=True)


class PostgresSessions:
    def __init__(self, conninfo: str, connect_timeout: int, hold_lock: str):
        """`hold_lock` is the catalogue's hold_session_lock, in psycopg's spelling."""
        self._conninfo = conninfo
        self._hold_lock = hold_lock
        self._connect_timeout = connect_timeout
        self._guard = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._holder: str | None = None
        self._proven_at: float | None = None

    def hold(self, worker_id: str, now: float) -> None:
        """Take `worker_id`'s lock on a new session (dropping any earlier one, and its proof)."""
        with self._guard:
            self._drop()
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name=f"batchgate {worker_id}"[:63],
                **LINK_OPTIONS,
            )
            conn.execute(self._hold_lock, {"lock_class": LOCK_CLASS, "key": lock_key(worker_id)})
            self._conn, self._holder, self._proven_at = conn, worker_id, now

    def prove(self, worker_id: str, now: float) -> bool:
        """True if `worker_id`'s session is still the one holding its lock (a round trip on it)."""
        with self._guard:
            if self._holder != worker_id or self._conn is None:
                return False
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                self._drop()
                return False
            self._proven_at = now
            return True

    def proven_at(self, worker_id: str) -> float | None:
        """When `worker_id`'s lock was last proven held; None once it is lost (or was never ours)."""
        return self._proven_at if self._holder == worker_id else None

    def close(self) -> None:
        with self._guard:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._holder, self._proven_at = None, None, None


def ended_sessions(db, try_lock: str, owners: Sequence[str]) -> list[str]:
    """Those of `owners` whose lock is free: their session ended. Run with the catalogue's
    try_session_lock as `try_lock`, inside a transaction, which frees the locks it took when it ends."""
    return [
        owner
        for owner in owners
        if db.execute(try_lock, {"lock_class": LOCK_CLASS, "key": lock_key(owner)}).fetchone()[0]
    ]
