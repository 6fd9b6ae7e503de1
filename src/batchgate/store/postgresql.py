"""PostgreSQL metadata store: psycopg 3 on a small thread pool, one pooled connection per call.

The pool is deliberately plain: a connection is checked when it is taken, and a new one is
made at once if it is dead, so while the server is away every call fails fast (callers
retry at their own pace) and the first call after it is back succeeds.

Coordination between workers lives in PostgreSQL's transactions: a shard claim locks its
batch row for the moment it counts that batch's running shards, then takes a shard with
`FOR UPDATE SKIP LOCKED`; the result fence holds the shard row with `FOR SHARE`, so a
takeover waits for an in-flight commit, and a fenced-out worker's commit fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from batchgate.errors import ConfigError, InsufficientStorage, Unavailable
from batchgate.store.migrations import migration_scripts, statements
from batchgate.store.pg_sessions import PostgresSessions, ended_sessions
from batchgate.store.queries import Catalogue, pyformat
from batchgate.store.redact import redact
from batchgate.store.sql import SqlStore

T = TypeVar("T")
log = logging.getLogger("batchgate.store")
POOL_SIZE = 8
CONNECT_TIMEOUT = 5  # seconds
MIGRATION_LOCK = 7_240_113  # pg_advisory_xact_lock key: one migrating process at a time
RETRIES = 5  # for transactions PostgreSQL rolled back on purpose (deadlock, serialization)
# A process paused inside a transaction (a suspended VM, a debugger) would keep its row locks
# until it resumes; the server ends such a session instead. batchgate's transactions are short.
IDLE_IN_TRANSACTION = "30s"


# The catalogue in psycopg's spelling, made once: row locks, and `%(name)s` parameters.
QUERIES = Catalogue(
    {
        "lock_batch": " FOR UPDATE",
        "lock_shard": " FOR UPDATE SKIP LOCKED",
        "fence_shard": " FOR SHARE",
        "lock_file": " FOR UPDATE",
        "share_file": " FOR SHARE",
        "lock_delivery": " FOR UPDATE OF d SKIP LOCKED",
    },
    style=pyformat,
)


class _Connection:
    """A psycopg connection with the DB-API's `executemany` returning its cursor, as the operations use it."""

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql: str, params: dict[str, Any] | tuple = ()) -> psycopg.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[dict[str, Any]]) -> psycopg.Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(sql, rows)
        return cursor


class _Pool:
    """Up to `size` connections (one per executor thread), checked on the way out, kept when healthy."""

    def __init__(self, conninfo: str, size: int):
        self._conninfo = conninfo
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=size)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
            if not healthy or not _offer(self._idle, conn):
                conn.close()

    def _take(self) -> psycopg.Connection:
        while (conn := _poll(self._idle)) is not None:
            try:
                conn.execute("")  # a round trip: a server restart leaves idle connections dead
                return conn
            except psycopg.Error:
                conn.close()
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
        return conn

    def close(self) -> None:
        while (conn := _poll(self._idle)) is not None:
            conn.close()


def _poll(idle: queue.LifoQueue) -> psycopg.Connection | None:
    try:
        return idle.get_nowait()
    except queue.Empty:
        return None


def _offer(idle: queue.LifoQueue, conn: psycopg.Connection) -> bool:
    try:
        idle.put_nowait(conn)
        return True
    except queue.Full:
        return False


class PostgresStore(SqlStore):
    Q = QUERIES

    def __init__(self, url: str):
        self._pool = _Pool(url, POOL_SIZE)
        self._executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="postgresql")
        # A worker's own connection, beside the pool.
        self._sessions = PostgresSessions(url, CONNECT_TIMEOUT, QUERIES["hold_session_lock"])

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        # postgresql+psycopg://… as SQLAlchemy spells it is accepted too.
        conninfo = "postgresql://" + url.split("://", 1)[-1]
        try:
            # One plain connection first: a wrong host, user or password is reported as it is, at once.
            await asyncio.to_thread(lambda: psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT).close())
        except psycopg.Error as exc:
            raise ConfigError(f"cannot use database {redact(url)}: {str(exc).strip().splitlines()[0]}") from None
        store = cls(conninfo)
        try:
            await store._write(_migrate)
        except (psycopg.Error, Unavailable) as exc:
            await store.close()
            raise ConfigError(f"cannot use database {redact(url)}: {exc}") from None
        return store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except pg_errors.DiskFull as exc:  # class 53100; an OperationalError too, so it is told apart first
            raise InsufficientStorage() from exc
        except (psycopg.OperationalError, pg_errors.IdleInTransactionSessionTimeout) as exc:
            # The server is restarting, out of reach, or ended this session after a pause: callers
            # retry (workers) or answer 503 (the API).
            raise _unavailable(exc) from exc

    def _tx(self, fn: Callable[[_Connection], T]) -> T:
        for attempt in range(RETRIES):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return fn(_Connection(conn))
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise
                log.info("transaction rolled back by PostgreSQL (%s); running it again", "deadlock or conflict")
        raise AssertionError("unreachable")

    def _query(self, fn: Callable[[_Connection], T]) -> T:
        # A read is safe to repeat: one more try on a fresh connection after a dropped one (a restart).
        try:
            with self._pool.connection() as conn:
                return fn(_Connection(conn))
        except psycopg.OperationalError:
            with self._pool.connection() as conn:
                return fn(_Connection(conn))

    async def _write(self, fn: Callable[[_Connection], T]) -> T:
        return await self._run(self._tx, fn)

    async def _read(self, fn: Callable[[_Connection], T]) -> T:
        return await self._run(self._query, fn)

    async def hold_session(self, worker_id: str, now: float) -> None:
        try:
            await asyncio.to_thread(self._sessions.hold, worker_id, now)
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc

    async def prove_session(self, worker_id: str, now: float) -> bool:
        return await asyncio.to_thread(self._sessions.prove, worker_id, now)

    def session_proven_at(self, worker_id: str) -> float | None:
        return self._sessions.proven_at(worker_id)

    async def ended_sessions(self, owners: Sequence[str]) -> list[str]:
        return await self._write(lambda db: ended_sessions(db, QUERIES["try_session_lock"], owners)) if owners else []

    async def close(self) -> None:
        await asyncio.to_thread(self._sessions.close)
        await self._run(self._pool.close)
        self._executor.shutdown(wait=True)


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"The database is unavailable right now ({type(exc).__name__}); try again shortly.")


def _migrate(db: _Connection) -> None:
    db.execute(QUERIES["lock_migrations"], {"key": MIGRATION_LOCK})
    db.execute(QUERIES["create_migrations_table"])
    applied = {v for (v,) in db.execute(QUERIES["applied_migrations"]).fetchall()}
    for version, script in migration_scripts("postgresql"):
        if version not in applied:
            for statement in statements(script):
                db.execute(statement)
            db.execute(QUERIES["record_migration"], {"version": version})
