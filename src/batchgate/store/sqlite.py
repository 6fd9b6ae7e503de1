"""SQLite metadata store: WAL, grouped commits; writes on one thread, reads on another.

Readers never wait for the writer under WAL, so a status poll is not queued behind a batch's
result commits. Each read runs in its own read transaction: one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from batchgate.errors import ConfigError, InsufficientStorage
from batchgate.store.migrations import migration_scripts, statements
from batchgate.store.queries import Catalogue
from batchgate.store.reserve import SpaceReserve
from batchgate.store.sql import PAGE_ROWS, SqlStore

T = TypeVar("T")
WAL_KEPT_BYTES = 64 * 1024 * 1024
__all__ = ["PAGE_ROWS", "SqliteStore"]


# BEGIN IMMEDIATE makes every write transaction exclusive: no row locks are needed.
QUERIES = Catalogue(
    {"lock_batch": "", "lock_shard": "", "fence_shard": "", "lock_file": "", "share_file": "", "lock_delivery": ""}
)


class SqliteStore(SqlStore):
    Q = QUERIES

    def __init__(self, path: str):
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None
        # An in-memory database exists once per connection: there, reads share the writer's.
        self._shared = path == ":memory:"
        self._reader = None if self._shared else ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._read_db: sqlite3.Connection | None = None
        self._reserve = None if self._shared else SpaceReserve(Path(f"{path}-reserve"))

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ConfigError(f"database url {url!r} names no file")
        store = cls(path)
        try:
            await store._run(store._connect)
            if store._reader is not None:  # after the migrations, so the reader sees the schema
                store._read_db = await asyncio.get_running_loop().run_in_executor(store._reader, store._open)
        except (sqlite3.Error, OSError, InsufficientStorage) as exc:
            await store.close()
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(
                f"cannot write to the database {path} ({reason}): make it and its folder writable by "
                f"this user, or choose another with --data-dir or BATCHGATE_DATABASE_URL"
            ) from None
        return store

    def _connect(self) -> None:
        if not self._shared:
            _writable(Path(self._path))
        self._db = self._open()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._tx(_migrate)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        # The WAL grows to the largest transaction (a finished batch's results are deleted in one);
        # past a checkpoint it is cut back to this, so a big batch does not leave its size on disk.
        db.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = _opened(self._db)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
                db.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself after some errors (a full disk); a second ROLLBACK would
                # hide the first error behind "no transaction is active".
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise InsufficientStorage() from exc
            raise
        if self._reserve is not None:
            self._reserve.restore()  # a write went through: there may be room for the reserve again
        return result

    def _tx_freeing_space(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._tx(fn)
        except InsufficientStorage:
            # Released on the writer's own thread, so no other write of this store can take the room first.
            if self._reserve is None or not self._reserve.release():
                raise
            return self._tx(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._tx, fn)

    async def _write_freeing_space(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._tx_freeing_space, fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            return await self._run(fn, _opened(self._db))
        return await asyncio.get_running_loop().run_in_executor(self._reader, _snapshot, _opened(self._read_db), fn)

    async def close(self) -> None:
        if self._read_db is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._read_db.close)
            self._read_db = None
        if self._reader is not None:
            self._reader.shutdown(wait=True)
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)


def _writable(path: Path) -> None:
    """Raise unless the database file and its folder can be written (SQLite writes its -wal and -shm beside it).

    A database whose migrations are all applied writes nothing on opening, so a read-only one
    would otherwise only show at the first request that writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for what in (path.parent, path):
        if what.exists() and not os.access(what, os.W_OK):
            raise PermissionError(errno.EACCES, "not writable", str(what))


def _opened(db: sqlite3.Connection | None) -> sqlite3.Connection:
    """The connection `open` made; an error once `close` has dropped it."""
    if db is None:
        raise sqlite3.ProgrammingError("the store is closed")
    return db


def _snapshot(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN")  # deferred: a read transaction, never a lock on writers
    try:
        return fn(db)
    finally:
        db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(QUERIES["create_migrations_table"])
    applied = {v for (v,) in db.execute(QUERIES["applied_migrations"])}
    for version, script in migration_scripts("sqlite"):
        if version not in applied:
            for statement in statements(script):
                db.execute(statement)
            db.execute(QUERIES["record_migration"], {"version": version})
