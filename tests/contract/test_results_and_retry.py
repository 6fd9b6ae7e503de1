"""Results while a batch runs, retrying only what failed, completion windows and the ETA, over real HTTP.

A real `batchgate serve` in front of a real mock upstream; the mock's directives choose which
lines fail ([flaky:1] with one attempt allowed), which are slow ([sleep:S]).
"""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from mka1 import SDK
from openai.types import Batch

from tests.contract.conftest import (
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    file_bytes_raw,
    http,
    jsonl,
    parse_jsonl,
    request_line,
    upload_raw,
    wait_batch_raw,
    wait_until,
)
from tests.support.servers import upstream_config

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3
MKA1 = "/api/v1/llm"
PREFIXES = pytest.mark.parametrize("prefix", [MKA1, OPENAI])


@pytest.fixture(scope="module")
def upstream(make_module_upstream):
    return make_module_upstream()


@pytest.fixture(scope="module")
def gw(make_module_gateway, upstream):
    """One attempt per line: a [flaky:1] line fails its first batch and succeeds when retried."""
    return make_module_gateway(upstream_config(("mock", upstream.base_url, ["*"])), env={"BATCHGATE_MAX_ATTEMPTS": "1"})


@pytest.fixture
def obo() -> str:
    return "rr-" + uuid.uuid4().hex[:12]


@pytest.fixture
def api(gw, obo):
    client = openai.OpenAI(
        base_url=gw.url + "/v1", api_key=gw.key, max_retries=0, timeout=30, default_headers={"X-On-Behalf-Of": obo}
    )
    yield client
    client.close()


def start(gw, lines: list[dict], obo: str, **extra) -> dict:
    uploaded = upload_raw(gw, jsonl(lines), obo=obo)
    assert uploaded.status == 200, uploaded.body
    created = create_batch_raw(gw, uploaded.json["id"], obo=obo, **extra)
    assert created.status == 200, created.body
    return created.json


def retry(gw, batch_id: str, obo: str, prefix: str = OPENAI):
    return http(gw, "POST", f"{prefix}/batches/{batch_id}/retry", obo=obo)


def results_page(gw, batch_id: str, obo: str, after: int = 0, limit: int | None = None, prefix: str = OPENAI):
    query = f"?after={after}" + (f"&limit={limit}" if limit is not None else "")
    reply = http(gw, "GET", f"{prefix}/batches/{batch_id}/results{query}", obo=obo)
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/x-ndjson"
    return parse_jsonl(reply.body)


def files_by_line(gw, batch: dict, input_lines: list[dict], obo: str) -> list[dict]:
    """The batch's output ∪ error lines, each with the input line number of its custom_id."""
    line_of = {line["custom_id"]: n for n, line in enumerate(input_lines, 1)}
    merged = []
    for file_id in (batch["output_file_id"], batch["error_file_id"]):
        if file_id:
            merged += [
                {**row, "line": line_of[row["custom_id"]]} for row in parse_jsonl(file_bytes_raw(gw, file_id, obo=obo))
            ]
    return sorted(merged, key=lambda row: row["line"])


def input_of(gw, batch: dict, obo: str) -> bytes:
    return file_bytes_raw(gw, batch["input_file_id"], obo=obo)


# --- retry only what failed ------------------------------------------------------------------------


def test_retry_of_100_failed_lines_out_of_1000_runs_exactly_those(gw, api, obo, upstream):
    failing = set(range(7, 1000, 10))  # 100 chosen lines
    lines = [request_line(f"r{n}", f"line {n} {obo}" + (" [flaky:1]" if n in failing else "")) for n in range(1000)]
    original = jsonl(lines).splitlines()
    batch = start(gw, lines, obo, max_concurrency=64, metadata={"team": "search"})
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 1000, "completed": 900, "failed": 100}

    # Through the openai SDK's own request machinery: it parses the new batch object.
    again = api.post(f"/batches/{done['id']}/retry", cast_to=Batch)
    assert again.id != done["id"] and again.endpoint == done["endpoint"]
    assert again.metadata == {"team": "search", "retry_of": done["id"]}
    assert again.completion_window == "24h" and again.max_concurrency == 64

    new_input = api.files.retrieve(again.input_file_id)
    assert new_input.purpose == "batch"
    assert input_of(gw, again.model_dump(), obo).splitlines() == [original[n] for n in sorted(failing)], (
        "exactly the failed lines, as they were sent, in input order"
    )
    finished = wait_batch_raw(gw, again.id, obo=obo)
    assert finished["status"] == "completed"
    assert finished["request_counts"] == {"total": 100, "completed": 100, "failed": 0}
    assert sorted(row["custom_id"] for row in parse_jsonl(file_bytes_raw(gw, finished["output_file_id"], obo=obo))) == (
        sorted(f"r{n}" for n in failing)
    )
    # Nothing failed the second time.
    nothing = assert_error_reply(retry(gw, again.id, obo), 409)
    assert nothing["code"] == "nothing_to_retry"


def test_retry_after_cancel_takes_the_cancelled_lines(gw, obo):
    lines = [request_line(f"c{n}", f"cancel {n} {obo} [sleep:0.2]") for n in range(20)]
    original = jsonl(lines).splitlines()
    batch = start(gw, lines, obo, max_concurrency=1)
    wait_until(
        lambda: http(gw, "GET", f"{OPENAI}/batches/{batch['id']}", obo=obo).json,
        lambda b: b["request_counts"]["completed"] >= 3,
        what="three lines answered",
    )
    assert http(gw, "POST", f"{OPENAI}/batches/{batch['id']}/cancel", obo=obo).status == 200
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    assert done["status"] == "cancelled"
    errors = parse_jsonl(file_bytes_raw(gw, done["error_file_id"], obo=obo))
    assert errors and {row["error"]["code"] for row in errors} == {"batch_cancelled"}

    reply = retry(gw, done["id"], obo, prefix=MKA1)
    assert reply.status == 200, reply.body
    again = reply.json
    assert again["metadata"] == {"retry_of": done["id"]} and again["status"] == "validating"
    cancelled = {row["custom_id"] for row in errors}
    expected = [raw for raw, line in zip(original, lines, strict=True) if line["custom_id"] in cancelled]
    assert input_of(gw, again, obo).splitlines() == expected
    finished = wait_batch_raw(gw, again["id"], obo=obo)
    assert finished["request_counts"] == {"total": len(expected), "completed": len(expected), "failed": 0}


def test_retry_after_expiry_takes_the_expired_lines(make_gateway, upstream):
    gw = make_gateway(
        upstream_config(("mock", upstream.base_url, ["*"])), env={"BATCHGATE_COMPLETION_WINDOW_SECONDS": "3"}
    )
    obo = "exp"
    lines = [request_line(f"e{n}", f"expire {n} [sleep:0.5]") for n in range(20)]
    original = jsonl(lines).splitlines()
    batch = start(gw, lines, obo, max_concurrency=2)
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    assert done["status"] == "expired"
    errors = parse_jsonl(file_bytes_raw(gw, done["error_file_id"], obo=obo))
    expired = {row["custom_id"] for row in errors}
    assert expired and {row["error"]["code"] for row in errors} == {"batch_expired"}

    reply = retry(gw, done["id"], obo)
    assert reply.status == 200, reply.body
    again = reply.json
    assert again["metadata"]["retry_of"] == done["id"]
    assert again["expires_at"] == again["created_at"] + 3, "a new window of its own"
    assert input_of(gw, again, obo).splitlines() == [
        raw for raw, line in zip(original, lines, strict=True) if line["custom_id"] in expired
    ]


@PREFIXES
def test_retry_refuses_a_running_batch_and_one_with_nothing_failed(gw, obo, prefix):
    slow = start(gw, [request_line("s", f"slow {obo} [sleep:3]")], obo)
    running = assert_error_reply(retry(gw, slow["id"], obo, prefix), 409)
    assert running["code"] == "batch_not_finished" and slow["id"] in running["message"]

    clean = start(gw, [request_line("ok", f"fine {obo}")], obo)
    assert wait_batch_raw(gw, clean["id"], obo=obo)["status"] == "completed"
    nothing = assert_error_reply(retry(gw, clean["id"], obo, prefix), 409)
    assert nothing["code"] == "nothing_to_retry"
    assert [b["id"] for b in http(gw, "GET", f"{prefix}/batches", obo=obo).json["data"]] == [clean["id"], slow["id"]]


def test_retry_of_a_batch_whose_input_was_deleted_is_a_clear_conflict(gw, obo):
    batch = start(gw, [request_line("f", f"fails {obo} [flaky:1]")], obo)
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    assert done["request_counts"]["failed"] == 1
    assert http(gw, "DELETE", f"{OPENAI}/files/{done['input_file_id']}", obo=obo).status == 200
    error = assert_error_reply(retry(gw, done["id"], obo), 409)
    assert error["code"] == "input_file_deleted" and done["input_file_id"] in error["message"]
    gone = assert_error_reply(http(gw, "GET", f"{OPENAI}/batches/{done['id']}/results", obo=obo), 409)
    assert gone["code"] == "input_file_deleted"
    assert [f["id"] for f in http(gw, "GET", f"{OPENAI}/files", obo=obo).json["data"]] == [done["error_file_id"]], (
        "a refused retry leaves no file behind"
    )


# --- results while running -------------------------------------------------------------------------


def test_results_streamed_while_running_equal_the_final_files(gw, api, obo):
    # Line 100 is slow: the lines after it are recorded long before it, and must not be served ahead of it.
    lines = [
        request_line(
            f"p{n}", f"page {n} {obo}" + (" [sleep:6]" if n == 100 else "") + (" [flaky:1]" if n % 9 == 0 else "")
        )
        for n in range(1, 201)
    ]
    batch = start(gw, lines, obo, max_concurrency=8)
    wait_until(
        lambda: http(gw, "GET", f"{OPENAI}/batches/{batch['id']}", obo=obo).json,
        lambda b: b["request_counts"]["completed"] + b["request_counts"]["failed"] == 199,
        what="every line but the slow one answered",
    )
    streamed, after = [], 0
    while page := results_page(gw, batch["id"], obo, after, limit=37):
        streamed += page
        after = page[-1]["line"]
    assert [row["line"] for row in streamed] == list(range(1, 100)), "a page stops at the first line still to come"
    # The openai SDK reads the estimate as an extra field, once a whole second of running makes a rate.
    running = wait_until(
        lambda: api.batches.retrieve(batch["id"]),
        lambda b: b.model_extra["estimated_completion_at"] is not None or b.status != "in_progress",
        what="an estimate",
    )
    assert running.status == "in_progress", "the slow line is still out"
    assert running.model_extra["estimated_completion_at"] >= time.time() - 1

    done = wait_batch_raw(gw, batch["id"], obo=obo)
    while page := results_page(gw, batch["id"], obo, after, limit=37):
        streamed += page
        after = page[-1]["line"]
    assert done["status"] == "completed" and done["estimated_completion_at"] is None
    assert streamed == files_by_line(gw, done, lines, obo), "the stream is output ∪ errors, by line"
    assert sum(row["error"] is not None for row in streamed) == done["request_counts"]["failed"] == 22

    # After the end: the same lines in one page, or from any line on, in both dialects.
    assert results_page(gw, batch["id"], obo, limit=10_000, prefix=MKA1) == streamed
    assert results_page(gw, batch["id"], obo, after=150, limit=5) == streamed[150:155]


def test_blank_lines_in_finished_shards_do_not_hold_the_stream_back(make_gateway, upstream):
    gw = make_gateway(upstream_config(("mock", upstream.base_url, ["*"])), env={"BATCHGATE_SHARD_LINES": "10"})
    obo = "blank"
    # Physical lines 15, 16 and 33 are blank; line 55 is slow, in the last shards to finish.
    raw: list[dict | bytes] = []
    for n in range(1, 61):
        slow = " [sleep:6]" if n == 55 else ""
        raw.append(b"" if n in (15, 16, 33) else request_line(f"b{n}", f"blank test {n}{slow}"))
    uploaded = upload_raw(gw, jsonl(raw), obo=obo)
    batch = create_batch_raw(gw, uploaded.json["id"], obo=obo, max_concurrency=32).json
    wait_until(
        lambda: http(gw, "GET", f"{OPENAI}/batches/{batch['id']}", obo=obo).json,
        lambda b: b["request_counts"]["completed"] == 56,
        what="every line but the slow one answered",
    )
    # A shard is marked finished a moment after its last result is recorded: until then its blank
    # lines hold the stream back, as any line still to come does.
    expected = [n for n in range(1, 55) if n not in (15, 16, 33)]
    running = wait_until(
        lambda: results_page(gw, batch["id"], obo),
        lambda page: [row["line"] for row in page] == expected,
        what="every line before the slow one served",
    )
    assert http(gw, "GET", f"{OPENAI}/batches/{batch['id']}", obo=obo).json["status"] == "in_progress"
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    rest = results_page(gw, batch["id"], obo, after=running[-1]["line"])
    assert [row["line"] for row in rest] == list(range(55, 61))
    assert [row["custom_id"] for row in running + rest] == [f"b{n}" for n in range(1, 61) if n not in (15, 16, 33)]
    assert done["request_counts"]["completed"] == 57


def test_results_of_a_cancelled_batch_include_its_cancelled_lines(gw, obo):
    lines = [request_line(f"k{n}", f"keep {n} {obo} [sleep:0.2]") for n in range(1, 16)]
    batch = start(gw, lines, obo, max_concurrency=1)
    wait_until(
        lambda: results_page(gw, batch["id"], obo),
        lambda page: len(page) >= 2,
        what="two results recorded",
    )
    assert http(gw, "POST", f"{OPENAI}/batches/{batch['id']}/cancel", obo=obo).status == 200
    done = wait_batch_raw(gw, batch["id"], obo=obo)
    rows = results_page(gw, batch["id"], obo)
    assert [row["line"] for row in rows] == list(range(1, 16))
    assert rows == files_by_line(gw, done, lines, obo)
    assert rows[-1]["error"]["code"] == "batch_cancelled"


@PREFIXES
@pytest.mark.parametrize(
    ("query", "param"),
    [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=", "limit")],
)
def test_bad_results_parameters_are_a_clear_400(gw, obo, prefix, query, param):
    batch = start(gw, [request_line("a", f"a {obo}")], obo)
    error = assert_error_reply(http(gw, "GET", f"{prefix}/batches/{batch['id']}/results?{query}", obo=obo), 400)
    assert error["param"] == param and param in error["message"]


def test_an_after_past_the_last_line_is_an_empty_page(gw, obo):
    batch = start(gw, [request_line("a", f"past {obo}")], obo)
    for after in (1, 999_999_999_999_999_999):
        assert results_page(gw, batch["id"], obo, after=after) == []
    wait_batch_raw(gw, batch["id"], obo=obo)
    assert results_page(gw, batch["id"], obo, after=999_999_999_999_999_999) == []
    assert [row["line"] for row in results_page(gw, batch["id"], obo)] == [1]


@PREFIXES
def test_another_scope_sees_neither_results_nor_retry(gw, obo, prefix):
    batch = start(gw, [request_line("x", f"x {obo} [flaky:1]")], obo)
    wait_batch_raw(gw, batch["id"], obo=obo)
    for other in ("someone-else", None):
        reply = http(gw, "GET", f"{prefix}/batches/{batch['id']}/results", obo=other)
        assert assert_error_reply(reply, 404)["param"] == "batch_id"
        assert_error_reply(retry(gw, batch["id"], other, prefix), 404)
    other_key = gw.create_key("intruder", owner="intruder")
    assert_error_reply(http(gw, "GET", f"{prefix}/batches/{batch['id']}/results", obo=obo, key=other_key), 404)
    assert_error_reply(http(gw, "POST", f"{prefix}/batches/{batch['id']}/retry", obo=obo, key=other_key), 404)
    assert [row["custom_id"] for row in results_page(gw, batch["id"], obo, prefix=prefix)] == ["x"]


# --- completion windows and the ETA ----------------------------------------------------------------


@pytest.mark.parametrize(("window", "seconds"), [("1h", 3600), ("48h", 172800), ("2d", 172800), ("7d", 604800)])
def test_a_completion_window_sets_the_expiry_and_both_sdks_read_it(gw, api, obo, window, seconds):
    file = api.files.create(file=("w.jsonl", jsonl([request_line("w", f"w {obo}")])), purpose="batch")
    batch = api.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window=window)
    assert batch.completion_window == window and batch.expires_at == batch.created_at + seconds
    wait_batch_raw(gw, batch.id, obo=obo)
    client = httpx.Client()
    with SDK(bearer_auth=gw.key, server_url=gw.url, client=client, retry_config=None) as sdk:
        seen = sdk.llm.batches.get(batch_id=batch.id, x_on_behalf_of=obo)
        assert seen.completion_window == window and seen.expires_at == batch.expires_at
        listed = sdk.llm.batches.list(x_on_behalf_of=obo)
        assert batch.id in [b.id for b in listed.data]
    client.close()
    assert api.batches.retrieve(batch.id).model_extra["estimated_completion_at"] is None


@pytest.mark.parametrize("window", ["0h", "8d", "169h", "1.5h", " 24h"])
def test_a_window_outside_1h_to_7d_is_a_clear_400(gw, obo, window):
    file_id = upload_raw(gw, jsonl([request_line("w", "w")]), obo=obo).json["id"]
    error = assert_error_reply(create_batch_raw(gw, file_id, obo=obo, completion_window=window), 400)
    assert error["code"] == "invalid_completion_window" and error["param"] == "completion_window"
    assert "1h to 7d" in error["message"]


def test_no_estimate_before_the_batch_runs(gw, obo):
    batch = start(gw, [request_line("n", f"n {obo}")], obo)
    assert batch["status"] == "validating" and batch["estimated_completion_at"] is None
