"""batchgate.domain.records: wire shapes of batches, files and list pages."""

from __future__ import annotations

import orjson
import pytest

from batchgate.domain.records import BatchRecord, FileRecord, Scope, Usage, list_page
from batchgate.domain.status import BatchStatus
from tests.support.wire_fields import BATCH_FIELDS

FILE_FIELDS = {"id", "object", "bytes", "created_at", "filename", "purpose", "expires_at", "status", "sha256"}

SCOPE = Scope("owner-1", "tenant")
BATCH_ID = "batch_" + "a" * 32


def batch(**changes) -> BatchRecord:
    fields = dict(
        id=BATCH_ID,
        scope=SCOPE,
        endpoint="/v1/chat/completions",
        input_file_id="file-in",
        completion_window="24h",
        status=BatchStatus.VALIDATING,
        created_at=1_000,
        expires_at=1_000 + 86400,
        max_concurrency=32,
    )
    fields.update(changes)
    return BatchRecord(**fields)


def file(**changes) -> FileRecord:
    fields = dict(
        id="file-abc",
        scope=SCOPE,
        filename="in.jsonl",
        purpose="batch",
        bytes=1234,
        sha256="f" * 64,
        storage_key="k/abc",
        created_at=2_000,
        expires_at=2_000 + 30 * 86400,
    )
    fields.update(changes)
    return FileRecord(**fields)


def test_batch_wire_has_every_design_field_plus_usage():
    wire = batch().to_wire()
    assert set(wire) >= set(BATCH_FIELDS)
    assert "usage" in wire and "max_concurrency" in wire


def test_fresh_batch_wire_values():
    wire = batch().to_wire()
    assert wire["id"] == BATCH_ID
    assert wire["object"] == "batch"
    assert wire["endpoint"] == "/v1/chat/completions"
    assert wire["input_file_id"] == "file-in"
    assert wire["completion_window"] == "24h"
    assert wire["status"] == "validating"
    assert wire["created_at"] == 1_000
    assert wire["expires_at"] == 1_000 + 86400
    assert wire["errors"] is None and wire["metadata"] is None
    assert wire["output_file_id"] is None and wire["error_file_id"] is None
    for name in (
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
    ):
        assert wire[name] is None, name
    assert wire["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert wire["max_concurrency"] == 32
    assert wire["usage"] == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }


def test_scope_and_internal_fields_do_not_leak():
    wire = batch(output_expires_seconds=3600).to_wire()
    assert "scope" not in wire and "owner" not in wire and "on_behalf_of" not in wire
    assert "tenant" not in orjson.dumps(wire).decode()
    assert "storage_key" not in file().to_wire()


def test_finished_batch_wire_values_are_not_swapped():
    timestamps = {
        name: 1_000 + i
        for i, name in enumerate(
            (
                "in_progress_at",
                "finalizing_at",
                "completed_at",
                "failed_at",
                "expired_at",
                "cancelling_at",
                "cancelled_at",
            ),
            1,
        )
    }
    errors = {"object": "list", "data": [{"code": "x", "message": "Line 1", "param": None, "line": 1}]}
    record = batch(
        status=BatchStatus.COMPLETED,
        output_file_id="file-out",
        error_file_id="file-err",
        errors=errors,
        metadata={"k": "v"},
        total=10,
        completed=7,
        failed=3,
        usage=Usage(input_tokens=100, output_tokens=50, total_tokens=150, cached_tokens=20, reasoning_tokens=5),
        **timestamps,
    )
    wire = record.to_wire()
    assert wire["status"] == "completed"
    assert wire["output_file_id"] == "file-out" and wire["error_file_id"] == "file-err"
    assert wire["errors"] == errors
    assert wire["metadata"] == {"k": "v"}
    for name, value in timestamps.items():
        assert wire[name] == value, name
    assert wire["request_counts"] == {"total": 10, "completed": 7, "failed": 3}
    assert wire["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 20},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 150,
    }


@pytest.mark.parametrize("status", list(BatchStatus))
def test_batch_status_is_a_plain_string_on_the_wire(status):
    wire = batch(status=status).to_wire()
    assert type(wire["status"]) is str and wire["status"] == status.value
    assert orjson.loads(orjson.dumps(wire))["status"] == status.value


def test_file_wire():
    wire = file().to_wire()
    assert set(wire) >= FILE_FIELDS
    assert wire["id"] == "file-abc"
    assert wire["object"] == "file"
    assert wire["bytes"] == 1234
    assert wire["created_at"] == 2_000
    assert wire["filename"] == "in.jsonl"
    assert wire["purpose"] == "batch"
    assert wire["expires_at"] == 2_000 + 30 * 86400
    assert wire["status"] == "processed"
    assert wire["sha256"] == "f" * 64


def test_file_wire_without_expiry():
    assert file(expires_at=None, purpose="batch_output").to_wire()["expires_at"] is None


def test_list_page_empty():
    assert list_page([], False) == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize("has_more", [True, False])
def test_list_page_ids(has_more):
    items = [file(id="file-1"), file(id="file-2"), file(id="file-3")]
    page = list_page(items, has_more)
    assert page["object"] == "list"
    assert [d["id"] for d in page["data"]] == ["file-1", "file-2", "file-3"]
    assert page["data"][0] == items[0].to_wire()
    assert page["first_id"] == "file-1" and page["last_id"] == "file-3"
    assert page["has_more"] is has_more


def test_list_page_single_batch():
    page = list_page([batch()], True)
    assert page["first_id"] == page["last_id"] == BATCH_ID
    assert page["data"][0]["object"] == "batch"


def test_usage_wire_and_sum():
    assert (Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50)).astuple() == (11, 22, 33, 44, 55)
    assert Usage(1, 2, 3, 4, 5).to_wire() == {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 3,
    }


def test_the_estimate_is_on_the_wire_when_the_time_is_given():
    running = batch(status=BatchStatus.IN_PROGRESS, in_progress_at=1_000, total=100, completed=20, failed=5)
    assert running.to_wire()["estimated_completion_at"] is None, "no time, no estimate"
    assert running.to_wire(1_010)["estimated_completion_at"] == 1_010 + 30  # 25 lines in 10 s: 75 more in 30 s
    assert batch().to_wire(1_010)["estimated_completion_at"] is None
    wire = list_page([running], False, 1_010)
    assert wire["data"][0]["estimated_completion_at"] == 1_040
