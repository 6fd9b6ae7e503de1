"""Metadata stores, chosen by the scheme of BATCHGATE_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from batchgate.errors import ConfigError
from batchgate.store.base import KeyRecord, ResultRow, ShardLease, Store

Opener = Callable[[str], Awaitable[Store]]


async def _open_sqlite(url: str) -> Store:
    from batchgate.store.sqlite import SqliteStore

    return await SqliteStore.open(url)


async def _open_postgresql(url: str) -> Store:
    from batchgate.store.postgresql import PostgresStore

    return await PostgresStore.open(url)


STORES: dict[str, Opener] = {"sqlite": _open_sqlite, "postgresql": _open_postgresql, "postgres": _open_postgresql}


async def open_store(url: str) -> Store:
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    opener = STORES.get(scheme)
    if opener is None:
        raise ConfigError(f"database url {url!r}: unsupported scheme {scheme!r} (supported: {', '.join(STORES)})")
    return await opener(url)


__all__ = ["KeyRecord", "ResultRow", "ShardLease", "Store", "open_store"]
