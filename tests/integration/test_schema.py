"""Every migration applied to an empty database of each kind gives the same schema: the one described here.

Types are compared by kind (SQLite's INTEGER and PostgreSQL's bigint are both 64-bit integers),
with nullability, primary keys and every secondary index.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

import batchgate.store
from batchgate.store.migrations import migration_scripts

KINDS = {
    "integer": "int",
    "bigint": "int",
    "text": "text",
    "blob": "bytes",
    "bytea": "bytes",
    "double precision": "float",
}


def table(pk: tuple[str, ...], columns: dict[str, str], indexes: set[tuple[tuple[str, ...], bool]] = frozenset()):
    """columns: name → kind, with a trailing '?' when nullable; indexes: (columns, unique) besides the pk."""
    return {"pk": pk, "columns": columns, "indexes": set(indexes)}


STAMP = "int?"
REFERENCE = {
    "schema_migrations": table(("version",), {"version": "int"}),
    "api_keys": table(
        ("id",),
        {
            "id": "text",
            "name": "text",
            "owner": "text",
            "secret_hash": "text",
            "prefix": "text",
            "created_at": "int",
            "revoked_at": STAMP,
        },
        {(("secret_hash",), True)},
    ),
    "files": table(
        ("seq",),
        {
            "seq": "int",
            "id": "text",
            "owner": "text",
            "on_behalf_of": "text",
            "filename": "text",
            "purpose": "text",
            "bytes": "int",
            "sha256": "text",
            "storage_key": "text",
            "created_at": "int",
            "expires_at": STAMP,
        },
        {(("id",), True), (("owner", "on_behalf_of", "seq"), False), (("expires_at",), False)},
    ),
    "batches": table(
        ("seq",),
        {
            "seq": "int",
            "id": "text",
            "owner": "text",
            "on_behalf_of": "text",
            "endpoint": "text",
            "input_file_id": "text",
            "completion_window": "text",
            "status": "text",
            "max_concurrency": "int",
            "metadata": "text?",
            "output_expires_seconds": STAMP,
            "output_file_id": "text?",
            "error_file_id": "text?",
            "errors": "text?",
            "created_at": "int",
            "expires_at": "int",
            "in_progress_at": STAMP,
            "finalizing_at": STAMP,
            "completed_at": STAMP,
            "failed_at": STAMP,
            "expired_at": STAMP,
            "cancelling_at": STAMP,
            "cancelled_at": STAMP,
            "total": "int",
            "completed": "int",
            "failed": "int",
            "input_tokens": "int",
            "output_tokens": "int",
            "total_tokens": "int",
            "cached_tokens": "int",
            "reasoning_tokens": "int",
            "model": "text?",
            "lease_owner": "text?",
            "lease_expires_at": "float?",
            "sealed": "int",
            "served_at": "float",
            "duplicates_saved": "int",
            "dispatch_key": "text?",
            "grouped": "int",
        },
        {(("id",), True), (("owner", "on_behalf_of", "seq"), False), (("status",), False)},
    ),
    "results": table(("batch_id", "line"), {"batch_id": "text", "line": "int", "ok": "int", "record": "bytes"}),
    "shards": table(
        ("batch_id", "shard"),
        {
            "batch_id": "text",
            "shard": "int",
            "first_line": "int",
            "last_line": "int",
            "start_offset": "int",
            "done": "int",
            "lease_owner": "text?",
            "lease_expires_at": "float?",
            "handed_on": "int",
        },
        {(("done", "batch_id"), False)},
    ),
    "file_summaries": table(
        ("file_id",),
        {
            "file_id": "text",
            "endpoint": "text",
            "requests": "int",
            "last_line": "int",
            "model": "text?",
            "grains": "bytes",
            "max_lines": "int",
            "max_line_bytes": "int",
            "shard_lines": "int",
        },
    ),
    "webhook_endpoints": table(
        ("seq",),
        {
            "seq": "int",
            "id": "text",
            "owner": "text",
            "on_behalf_of": "text",
            "url": "text",
            "events": "text",
            "secret": "text",
            "created_at": "int",
        },
        {(("id",), True), (("owner", "on_behalf_of", "seq"), False)},
    ),
    "webhook_events": table(
        ("seq",),
        {"seq": "int", "id": "text", "type": "text", "batch_id": "text", "created_at": "int"},
        {(("id",), True), (("batch_id",), False)},
    ),
    "webhook_deliveries": table(
        ("event_id", "endpoint_id"),
        {
            "event_id": "text",
            "endpoint_id": "text",
            "state": "text",
            "attempts": "int",
            "next_attempt_at": "float",
            "last_error": "text?",
            "lease_owner": "text?",
            "lease_expires_at": "float?",
        },
        {(("state", "next_attempt_at"), False), (("endpoint_id",), False)},
    ),
}


def _column(kind: str, nullable: bool) -> str:
    return KINDS[kind.lower()] + ("?" if nullable else "")


def sqlite_schema(path: str) -> dict:
    db = sqlite3.connect(path)
    try:
        schema = {}
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            info = db.execute(f"PRAGMA table_info({name})").fetchall()
            pk = tuple(col for *_, col in sorted((pk, c) for _, c, _, _, _, pk in info if pk))
            columns = {c: _column(kind, not notnull and not pk) for _, c, kind, notnull, _, pk in info}
            indexes = set()
            for _, index, unique, origin, _ in db.execute(f"PRAGMA index_list({name})"):
                if origin != "pk":
                    cols = tuple(r[2] for r in db.execute(f"PRAGMA index_info({index})"))
                    indexes.add((cols, bool(unique)))
            schema[name] = table(pk, columns, indexes)
        return schema
    finally:
        db.close()


def postgresql_schema(url: str) -> dict:
    with psycopg.connect(url) as conn:
        schema = {}
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (name,) in tables.fetchall():
            columns = {
                c: _column(kind, nullable == "YES")
                for c, kind, nullable in conn.execute(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s",
                    (name,),
                )
            }
            pk, indexes = (), set()
            for cols, unique, primary in conn.execute(
                "SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), "
                "i.indisunique, i.indisprimary FROM pg_index i WHERE i.indrelid = %s::regclass",
                (name,),
            ):
                if primary:
                    pk = tuple(cols)
                else:
                    indexes.add((tuple(cols), unique))
            schema[name] = table(pk, columns, indexes)
        return schema


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_all_migrations_on_an_empty_database_give_the_reference_schema(dialect, tmp_path, request):
    if dialect == "sqlite":
        url = "sqlite:///" + str(tmp_path / "schema.db")
    else:
        url = request.getfixturevalue("postgres_server").database()
    store = await batchgate.store.open_store(url)
    await store.close()
    schema = sqlite_schema(str(tmp_path / "schema.db")) if dialect == "sqlite" else postgresql_schema(url)
    assert sorted(schema) == sorted(REFERENCE)
    for name, expected in REFERENCE.items():
        assert schema[name] == expected, f"{dialect}: table {name} differs from the reference"


def test_both_dialects_have_the_same_migration_versions():
    assert [v for v, _ in migration_scripts("sqlite")] == [v for v, _ in migration_scripts("postgresql")]
