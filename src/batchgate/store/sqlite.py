"""SQLite metadata store: WAL, one connection on one thread, grouped commits."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from batchgate.errors import ConfigError
from batchgate.store.migrations import migration_scripts, statements
from batchgate.store.sql import PAGE_ROWS, SqlStore

T = TypeVar("T")
__all__ = ["PAGE_ROWS", "SqliteStore"]


class SqliteStore(SqlStore):
    # BEGIN IMMEDIATE makes every write transaction exclusive: no row locks are needed.

    def __init__(self, path: str):
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, url: str) -> "SqliteStore":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ConfigError(f"database url {url!r} names no file")
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=ON")
        self._db = db
        self._tx(_migrate)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._tx, fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(fn, self._db)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    applied = {v for (v,) in db.execute("SELECT version FROM schema_migrations")}
    for version, script in migration_scripts("sqlite"):
        if version not in applied:
            for statement in statements(script):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
