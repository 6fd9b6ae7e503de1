"""The query catalogue and the row mapping, without a database."""

import re

import pytest

from batchgate.domain.file_check import FileSummary, LineLimits
from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage
from batchgate.domain.status import BatchStatus
from batchgate.store import rows
from batchgate.store.queries import FRAGMENTS, QUERIES, Catalogue, pyformat

SQLITE = Catalogue(dict.fromkeys(FRAGMENTS, ""))
POSTGRESQL = Catalogue({name: f" /*{name}*/" for name in FRAGMENTS}, style=pyformat)


def test_every_statement_is_written_with_named_parameters_only():
    for name, sql in QUERIES.items():
        assert "?" not in sql and "%s" not in sql, name


def test_the_postgresql_catalogue_speaks_pyformat_and_fills_every_fragment():
    for name in QUERIES:
        sql = POSTGRESQL[name]
        assert not re.search(r"(?<![:\w]):[A-Za-z_]", sql), name
        assert not any("{" + fragment + "}" in sql for fragment in FRAGMENTS), name
    assert POSTGRESQL["fence_shard"].endswith("done = 0 /*fence_shard*/")
    assert "%(batch_id)s" in POSTGRESQL["insert_result"]


def test_a_backend_supplies_every_fragment():
    with pytest.raises(ValueError):
        Catalogue({"lock_batch": ""})


def test_composed_statements_fill_their_slots_in_the_backend_style():
    marks, params = Catalogue.in_list("owner", ["w1", "w2"])
    assert params == {"owner0": "w1", "owner1": "w2"}
    sql = POSTGRESQL.compose("expire_shard_leases", owners=marks)
    assert "IN (%(owner0)s, %(owner1)s)" in sql and "{" not in sql
    assert SQLITE.compose("expire_shard_leases", owners=marks) == QUERIES["expire_shard_leases"].format(owners=marks)


def _row(columns, values: dict):
    return tuple(values[column] for column in columns)


def test_a_file_and_its_summary_round_trip_through_their_columns():
    file = FileRecord("file-1", Scope("alice", "team"), "in.jsonl", "batch", 10, "ab", "key", 1000, None)
    assert rows.file_of(_row(rows.FILE_COLUMNS, rows.file_params(file))) == file
    summary = FileSummary("/v1/chat/completions", 3, 4, "m", b"\x01", LineLimits(10, 100, 5))
    assert rows.summary_of(_row(rows.SUMMARY_COLUMNS, rows.summary_params("file-1", summary))) == summary


def test_a_batch_row_becomes_its_record_by_column_name():
    values = {column: None for column in rows.BATCH_COLUMNS}
    values.update(
        id="batch_1",
        owner="alice",
        on_behalf_of="",
        endpoint="/v1/chat/completions",
        input_file_id="file-1",
        completion_window="24h",
        status="in_progress",
        created_at=1,
        expires_at=2,
        max_concurrency=8,
        metadata='{"k": "v"}',
        total=3,
        completed=1,
        failed=1,
        input_tokens=5,
        output_tokens=6,
        total_tokens=11,
        cached_tokens=0,
        reasoning_tokens=0,
        duplicates_saved=2,
    )
    batch = rows.batch_of(_row(rows.BATCH_COLUMNS, values))
    assert batch == BatchRecord(
        "batch_1",
        Scope("alice"),
        "/v1/chat/completions",
        "file-1",
        "24h",
        BatchStatus.IN_PROGRESS,
        1,
        2,
        8,
        {"k": "v"},
        total=3,
        completed=1,
        failed=1,
        usage=Usage(5, 6, 11),
        duplicates_saved=2,
    )
    params = rows.new_batch_params(batch)
    assert set(params) == set(rows.NEW_BATCH_COLUMNS) and params["metadata"] == '{"k":"v"}'
