"""PostgreSQL metadata store: psycopg 3 on a small thread pool, one pooled connection per call.

Coordination between workers lives in PostgreSQL's transactions: a shard claim locks its
batch row for the moment it counts that batch's running shards, then takes a shard with
`FOR UPDATE SKIP LOCKED`; the result fence holds the shard row with `FOR SHARE`, so a
takeover waits for an in-flight commit, and a fenced-out worker's commit fails.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from batchgate.errors import ConfigError, Unavailable
from batchgate.store.migrations import migration_scripts, statements
from batchgate.store.sql import SqlStore

T = TypeVar("T")
log = logging.getLogger("batchgate.store")
POOL_SIZE = 8
MIGRATION_LOCK = 7_240_113  # pg_advisory_xact_lock key: one migrating process at a time
RETRIES = 5  # for transactions PostgreSQL rolled back on purpose (deadlock, serialization)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _Connection:
    """A psycopg connection speaking the `?` placeholders the shared queries use."""

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql: str, params: tuple | list = ()) -> psycopg.Cursor:
        return self._conn.execute(_pg(sql), params)

    def executemany(self, sql: str, rows: Iterable[tuple]) -> psycopg.Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(_pg(sql), list(rows))
        return cursor


class PostgresStore(SqlStore):
    LOCK_BATCH = " FOR UPDATE"
    LOCK_SHARD = " FOR UPDATE SKIP LOCKED"
    FENCE_SHARD = " FOR SHARE"

    def __init__(self, url: str):
        self._pool = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, open=False, kwargs={"autocommit": True},
                                    check=ConnectionPool.check_connection, name="batchgate", timeout=10.0)
        self._executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="postgresql")

    @classmethod
    async def open(cls, url: str) -> "PostgresStore":
        # postgresql+psycopg://… as SQLAlchemy spells it is accepted too.
        store = cls("postgresql://" + url.split("://", 1)[-1])
        try:
            await store._run(store._pool.open, True, 10.0)
            await store._write(_migrate)
        except (psycopg.Error, PoolTimeout, Unavailable) as exc:
            await store.close()
            raise ConfigError(f"cannot use database {_safe(url)}: {exc}") from None
        return store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # The server is restarting or out of reach: callers retry (workers) or answer 503 (the API).
            raise Unavailable(f"The database is unavailable right now ({type(exc).__name__}); try again shortly.") from exc

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

    async def close(self) -> None:
        await self._run(self._pool.close)
        self._executor.shutdown(wait=True)


def _migrate(db: _Connection) -> None:
    db.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    applied = {v for (v,) in db.execute("SELECT version FROM schema_migrations").fetchall()}
    for version, script in migration_scripts("postgresql"):
        if version not in applied:
            for statement in statements(script):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))


def _safe(url: str) -> str:
    """The url without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
