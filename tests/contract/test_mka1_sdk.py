"""The MKA1 SDK (`from mka1 import SDK`) against a live `batchgate serve` and a live mock upstream.

Every call goes through the official SDK; raw JSON is read from the very response the SDK got
(an httpx event hook) or, where noted, from a plain urllib request.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import urllib.request
import uuid

import httpx
import pytest
from mka1 import SDK
from mka1 import errors as mka1_errors

from tests.contract.conftest import (
    BATCH_ID,
    ENDPOINTS,
    FILE_FIELDS,
    TERMINAL,
    jsonl,
    mock_request_id,
    parse_jsonl,
    request_line,
    wait_until,
    words,
)
from tests.support.servers import upstream_config
from tests.support.wire_fields import BATCH_FIELDS

# --- servers and clients -------------------------------------------------------------------------

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3


@pytest.fixture(scope="module")
def alpha_upstream(make_module_upstream):
    """Serves only models matching alpha-*."""
    return make_module_upstream()


@pytest.fixture(scope="module")
def main_upstream(make_module_upstream):
    """Serves every other model."""
    return make_module_upstream()


@pytest.fixture(scope="module")
def gw(make_module_gateway, alpha_upstream, main_upstream):
    return make_module_gateway(
        upstream_config(("alpha", alpha_upstream.base_url, ["alpha-*"]), ("main", main_upstream.base_url, ["*"]))
    )


class RawRecorder:
    """An httpx response hook: keeps the JSON body of every JSON answer the SDK receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, object]] = []

    def __call__(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            response.read()
            self.seen.append(
                (response.request.method, response.request.url.path, response.status_code, response.json())
            )

    def last(self, method: str, path: str) -> object:
        for seen_method, seen_path, _, body in reversed(self.seen):
            if seen_method == method and seen_path == path:
                return body
        raise AssertionError(f"the SDK never received JSON for {method} {path}")


@pytest.fixture(scope="module")
def recorder():
    return RawRecorder()


@pytest.fixture(scope="module")
def sdk(gw, recorder):
    client = httpx.Client(follow_redirects=True, event_hooks={"response": [recorder]})
    with SDK(bearer_auth=gw.key, server_url=gw.url, client=client, retry_config=None) as sdk:
        yield sdk
    client.close()


@pytest.fixture
def obo() -> str:
    return "mka1-" + uuid.uuid4().hex[:12]


def upload(sdk: SDK, data: bytes, obo: str, name: str = "in.jsonl"):
    return sdk.llm.files.upload(file={"file_name": name, "content": data}, purpose="batch", x_on_behalf_of=obo)


def wait_done(sdk: SDK, batch_id: str, obo: str):
    return wait_until(
        lambda: sdk.llm.batches.get(batch_id=batch_id, x_on_behalf_of=obo),
        lambda b: b.status in TERMINAL,
        what=f"batch {batch_id} terminal",
    )


def run(sdk: SDK, lines: list[dict], obo: str, endpoint: str = "/v1/chat/completions", **create_args):
    file = upload(sdk, jsonl(lines), obo)
    created = sdk.llm.batches.create(input_file_id=file.id, endpoint=endpoint, x_on_behalf_of=obo, **create_args)
    return file, created, wait_done(sdk, created.id, obo)


def download(sdk: SDK, file_id: str, obo: str) -> tuple[bytes, httpx.Response]:
    response = sdk.llm.files.content(file_id=file_id, x_on_behalf_of=obo)
    return response.read(), response


def by_custom_id(data: bytes) -> dict[str, dict]:
    lines = parse_jsonl(data)
    ids = [line["custom_id"] for line in lines]
    assert len(ids) == len(set(ids)), f"a custom_id appears twice: {ids}"
    return {line["custom_id"]: line for line in lines}


# --- the full flow ---------------------------------------------------------------------------------


def test_full_flow_batch_object_carries_every_field(sdk, recorder, gw, obo):
    texts = {"r0": "alpha", "r1": "bravo charlie", "r2": "delta echo foxtrot golf"}
    lines = [request_line(cid, text) for cid, text in texts.items()]
    before = int(time.time())
    file, created, batch = run(sdk, lines, obo, metadata={"job": "nightly", "team": "qa"})
    after = int(time.time())

    assert created.status in ("validating", "in_progress", "finalizing", "completed")
    assert BATCH_ID.match(created.id), created.id
    # Through the SDK's model.
    assert batch.id == created.id
    assert batch.object == "batch"
    assert batch.endpoint == "/v1/chat/completions"
    assert batch.errors is None
    assert batch.input_file_id == file.id
    assert batch.completion_window == "24h"
    assert batch.status == "completed"
    assert batch.output_file_id and batch.output_file_id.startswith("file-")
    assert batch.error_file_id is None
    assert before - 1 <= batch.created_at <= after + 1
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at <= after + 1
    assert batch.expires_at == batch.created_at + 86400
    assert batch.failed_at is None and batch.expired_at is None
    assert batch.cancelling_at is None and batch.cancelled_at is None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (3, 3, 0)
    assert batch.metadata == {"job": "nightly", "team": "qa"}
    assert isinstance(batch.max_concurrency, int) and batch.max_concurrency >= 1

    # The raw JSON the SDK received: every field present (null ones too), plus usage.
    raw = recorder.last("GET", f"/api/v1/llm/batches/{batch.id}")
    missing = [name for name in BATCH_FIELDS if name not in raw]
    assert not missing, f"batch JSON lacks {missing}: {raw}"
    assert raw["status"] == "completed" and raw["expires_at"] == raw["created_at"] + 86400
    assert raw["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert raw["model"] == "m", "every line names model m"
    n = [words(t) for t in texts.values()]
    usage = raw["usage"]
    assert usage["input_tokens"] == sum(n)
    assert usage["output_tokens"] == sum(w + 1 for w in n)
    assert usage["total_tokens"] == sum(2 * w + 1 for w in n)

    # The same answer to a plain urllib GET.
    request = urllib.request.Request(
        f"{gw.url}/api/v1/llm/batches/{batch.id}", headers={"Authorization": f"Bearer {gw.key}", "X-On-Behalf-Of": obo}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers.get_content_type() == "application/json"
        plain = json.loads(answer.read())
    assert plain == raw

    output, _ = download(sdk, batch.output_file_id, obo)
    results = by_custom_id(output)
    assert set(results) == set(texts)
    for cid, text in texts.items():
        line = results[cid]
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: {text}"


def test_each_output_line_carries_the_answer_to_its_own_request(sdk, main_upstream, obo):
    # Early lines sleep longest, so answers come back in the reverse of input order.
    tag = uuid.uuid4().hex[:8]
    texts = {f"q{i:02d}": f"question {i} {tag} [sleep:{0.05 * (12 - i):.2f}]" for i in range(12)}
    lines = [request_line(cid, text) for cid, text in texts.items()]
    _, _, batch = run(sdk, lines, obo, max_concurrency=12)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed) == (12, 12)

    output, _ = download(sdk, batch.output_file_id, obo)
    results = by_custom_id(output)
    assert set(results) == set(texts)
    request_ids = set()
    for cid, text in texts.items():
        response = results[cid]["response"]
        assert response["status_code"] == 200
        assert response["body"]["choices"][0]["message"]["content"] == f"echo: {text}", cid
        assert response["request_id"] == mock_request_id(text)
        request_ids.add(results[cid]["id"])
    assert len(request_ids) == 12, "each output line needs its own batch_req_ id"

    sent = [r["text"] for r in main_upstream.requests() if tag in r["text"]]
    assert sorted(sent) == sorted(texts.values()), "each line is sent upstream exactly once"


def test_a_batch_may_mix_models_and_each_goes_to_its_upstream(sdk, alpha_upstream, main_upstream, obo):
    tag = uuid.uuid4().hex[:8]
    plan = [("c0", "alpha-small"), ("c1", "beta-large"), ("c2", "alpha-large"), ("c3", "gamma"), ("c4", "beta-large")]
    lines = [request_line(cid, f"{cid} {tag}", model=model) for cid, model in plan]
    _, _, batch = run(sdk, lines, obo)
    assert batch.status == "completed"
    assert batch.errors is None
    assert (batch.request_counts.total, batch.request_counts.completed) == (5, 5)

    output, _ = download(sdk, batch.output_file_id, obo)
    results = by_custom_id(output)
    for cid, model in plan:
        body = results[cid]["response"]["body"]
        assert body["model"] == model
        assert body["choices"][0]["message"]["content"] == f"echo: {cid} {tag}"
    to_alpha = sorted(r["text"] for r in alpha_upstream.requests() if tag in r["text"])
    to_main = sorted(r["text"] for r in main_upstream.requests() if tag in r["text"])
    assert to_alpha == [f"c0 {tag}", f"c2 {tag}"]
    assert to_main == [f"c1 {tag}", f"c3 {tag}", f"c4 {tag}"]


def expected_answer(endpoint: str, text: str) -> tuple[object, dict]:
    """What the mock answers for `text` (the part we check) and the usage we expect for it."""
    n = words(text)
    if endpoint == "/v1/chat/completions":
        return f"echo: {text}", {"input_tokens": n, "output_tokens": n + 1, "total_tokens": 2 * n + 1}
    if endpoint == "/v1/responses":
        return f"echo: {text}", {"input_tokens": n, "output_tokens": n + 1, "total_tokens": 2 * n + 1}
    if endpoint == "/v1/embeddings":
        return [b / 255 for b in hashlib.sha256(text.encode()).digest()[:8]], {
            "input_tokens": n,
            "output_tokens": 0,
            "total_tokens": n,
        }
    return f"https://images.invalid/{hashlib.md5(text.encode()).hexdigest()}", {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
    }


def answer_part(endpoint: str, body: dict) -> object:
    if endpoint == "/v1/chat/completions":
        return body["choices"][0]["message"]["content"]
    if endpoint == "/v1/responses":
        return body["output_text"]
    if endpoint == "/v1/embeddings":
        return body["data"][0]["embedding"]
    return body["data"][0]["url"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_runs_end_to_end(sdk, recorder, main_upstream, obo, endpoint):
    tag = uuid.uuid4().hex[:8]
    texts = {"e1": f"first {tag}", "e2": f"second one {tag}", "e3": f"third of three {tag}"}
    lines = [request_line(cid, text, endpoint=endpoint) for cid, text in texts.items()]
    _, _, batch = run(sdk, lines, obo, endpoint=endpoint)
    assert batch.status == "completed", batch.errors
    assert batch.endpoint == endpoint
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (3, 3, 0)

    output, _ = download(sdk, batch.output_file_id, obo)
    results = by_custom_id(output)
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for cid, text in texts.items():
        want, usage = expected_answer(endpoint, text)
        assert answer_part(endpoint, results[cid]["response"]["body"]) == want
        for key in totals:
            totals[key] += usage[key]
    raw = recorder.last("GET", f"/api/v1/llm/batches/{batch.id}")
    assert {k: raw["usage"][k] for k in totals} == totals
    assert sorted(r["text"] for r in main_upstream.requests() if tag in r["text"]) == sorted(texts.values())


# --- create parameters -------------------------------------------------------------------------------


def test_metadata_round_trips_through_create_get_and_list(sdk, obo):
    metadata = {f"key{i}": f"value {i} ünïcode" for i in range(15)} | {"empty": ""}
    assert len(metadata) == 16
    file = upload(sdk, jsonl([request_line("m1", "meta")]), obo)
    created = sdk.llm.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", metadata=metadata, x_on_behalf_of=obo
    )
    assert created.metadata == metadata
    assert sdk.llm.batches.get(batch_id=created.id, x_on_behalf_of=obo).metadata == metadata
    listed = sdk.llm.batches.list(x_on_behalf_of=obo)
    assert [b.metadata for b in listed.data if b.id == created.id] == [metadata]
    assert wait_done(sdk, created.id, obo).metadata == metadata

    plain = sdk.llm.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", x_on_behalf_of=obo)
    assert plain.metadata in (None, {})
    # metadata=None makes the SDK send "metadata": null, which must be accepted.
    explicit_null = sdk.llm.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", metadata=None, x_on_behalf_of=obo
    )
    assert explicit_null.metadata in (None, {})


def test_metadata_with_more_than_16_pairs_is_rejected(sdk, obo):
    file = upload(sdk, jsonl([request_line("m1", "meta")]), obo)
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            metadata={f"k{i}": "v" for i in range(17)},
            x_on_behalf_of=obo,
        )
    assert caught.value.status_code == 400
    assert sdk.llm.batches.list(x_on_behalf_of=obo).data == []


def test_max_concurrency_is_kept_and_bounds_lines_in_flight(sdk, main_upstream, obo):
    tag = uuid.uuid4().hex[:8]
    lines = [request_line(f"s{i}", f"slow {i} {tag} [sleep:0.3]") for i in range(3)]
    file, created, batch = run(sdk, lines, obo, max_concurrency=1)
    assert created.max_concurrency == 1
    assert batch.max_concurrency == 1
    assert batch.status == "completed" and batch.request_counts.completed == 3
    arrivals = sorted(r["t"] for r in main_upstream.requests() if tag in r["text"])
    assert len(arrivals) == 3
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.25 for gap in gaps), f"with max_concurrency=1 a line waits for the previous one: {gaps}"

    other = sdk.llm.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", max_concurrency=1024, x_on_behalf_of=obo
    )
    assert other.max_concurrency == 1024


@pytest.mark.parametrize("value", [1025, 100_000, 0, -1])
def test_max_concurrency_outside_1_to_ceiling_is_a_4xx(sdk, obo, value):
    file = upload(sdk, jsonl([request_line("c1", "x")]), obo)
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", max_concurrency=value, x_on_behalf_of=obo
        )
    assert 400 <= caught.value.status_code < 500
    body = json.loads(caught.value.body)
    assert body["error"]["param"] == "max_concurrency"
    assert sdk.llm.batches.list(x_on_behalf_of=obo).data == [], "a rejected create must not leave a batch"


# --- files -----------------------------------------------------------------------------------------


def test_upload_and_get_describe_the_file(sdk, recorder, obo):
    data = jsonl([request_line("u1", "héllo wörld")])
    before = int(time.time())
    file = upload(sdk, data, obo, name="my requests.jsonl")
    assert file.id.startswith("file-")
    assert file.object == "file"
    assert file.bytes_ == len(data)
    assert file.filename == "my requests.jsonl"
    assert file.purpose == "batch"
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert before - 1 <= file.created_at <= int(time.time()) + 1
    assert file.expires_at is None or file.expires_at > file.created_at
    raw = recorder.last("POST", "/api/v1/llm/files")
    assert [name for name in FILE_FIELDS if name not in raw] == []

    got = sdk.llm.files.get(file_id=file.id, x_on_behalf_of=obo)
    assert (got.id, got.bytes_, got.filename, got.purpose, got.sha256, got.created_at) == (
        file.id,
        file.bytes_,
        file.filename,
        file.purpose,
        file.sha256,
        file.created_at,
    )


def test_content_download_is_byte_identical_and_typed_jsonl(sdk, obo):
    # Unicode, an escaped newline, CRLF endings and no final newline: the bytes must come back untouched.
    data = (
        json.dumps(request_line("d1", "ünï\ncode ✓"), ensure_ascii=False).encode()
        + b"\r\n"
        + json.dumps(request_line("d2", "two")).encode()
    )
    file = upload(sdk, data, obo)
    content, response = download(sdk, file.id, obo)
    assert content == data
    assert response.headers["content-type"].split(";")[0].strip() == "application/jsonl"


def test_output_file_is_a_batch_output_file_with_truthful_metadata(sdk, obo):
    _, _, batch = run(sdk, [request_line("o1", "out one"), request_line("o2", "out two")], obo)
    content, response = download(sdk, batch.output_file_id, obo)
    assert response.headers["content-type"].split(";")[0].strip() == "application/jsonl"
    meta = sdk.llm.files.get(file_id=batch.output_file_id, x_on_behalf_of=obo)
    assert meta.purpose == "batch_output"
    assert meta.bytes_ == len(content)
    assert meta.sha256 == hashlib.sha256(content).hexdigest()
    assert content.endswith(b"\n") and len(parse_jsonl(content)) == 2


def test_files_list_filters_orders_and_paginates(sdk, obo):
    datas = [jsonl([request_line(f"f{i}", f"file number {i}")]) for i in range(5)]
    ids = []
    for data in datas:
        ids.append(upload(sdk, data, obo).id)
        time.sleep(0.01)
    newest_first = list(reversed(ids))

    listing = sdk.llm.files.list(x_on_behalf_of=obo)
    assert [f.id for f in listing.data] == newest_first
    assert listing.has_more is False
    assert listing.object == "list"
    assert (listing.first_id, listing.last_id) == (newest_first[0], newest_first[-1])

    assert [f.id for f in sdk.llm.files.list(order="asc", x_on_behalf_of=obo).data] == ids
    assert [f.id for f in sdk.llm.files.list(purpose="batch", x_on_behalf_of=obo).data] == newest_first

    digest = hashlib.sha256(datas[2]).hexdigest()
    only = sdk.llm.files.list(sha256=digest, x_on_behalf_of=obo)
    assert [f.id for f in only.data] == [ids[2]]
    assert sdk.llm.files.list(sha256="0" * 64, x_on_behalf_of=obo).data == []

    page = sdk.llm.files.list(limit=2, x_on_behalf_of=obo)
    assert [f.id for f in page.data] == newest_first[:2] and page.has_more is True
    page = sdk.llm.files.list(limit=2, after=page.last_id, x_on_behalf_of=obo)
    assert [f.id for f in page.data] == newest_first[2:4] and page.has_more is True
    page = sdk.llm.files.list(limit=2, after=page.last_id, x_on_behalf_of=obo)
    assert [f.id for f in page.data] == newest_first[4:] and page.has_more is False

    ascending = sdk.llm.files.list(limit=3, order="asc", after=ids[0], x_on_behalf_of=obo)
    assert [f.id for f in ascending.data] == ids[1:4] and ascending.has_more is True


def test_files_list_purpose_filter_separates_inputs_from_outputs(sdk, obo):
    file, _, batch = run(sdk, [request_line("p1", "purpose")], obo)
    assert [f.id for f in sdk.llm.files.list(purpose="batch", x_on_behalf_of=obo).data] == [file.id]
    everything = {f.id for f in sdk.llm.files.list(x_on_behalf_of=obo).data}
    assert everything == {file.id, batch.output_file_id}


def test_delete_removes_the_file_everywhere(sdk, obo):
    keep = upload(sdk, jsonl([request_line("k", "keep")]), obo)
    gone = upload(sdk, jsonl([request_line("g", "gone")]), obo)
    deleted = sdk.llm.files.delete(file_id=gone.id, x_on_behalf_of=obo)
    assert deleted.id == gone.id and deleted.deleted is True

    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.files.get(file_id=gone.id, x_on_behalf_of=obo)
    assert caught.value.status_code == 404
    with pytest.raises(mka1_errors.GetFileContentNotFoundError):
        sdk.llm.files.content(file_id=gone.id, x_on_behalf_of=obo)
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.files.delete(file_id=gone.id, x_on_behalf_of=obo)
    assert caught.value.status_code == 404
    assert [f.id for f in sdk.llm.files.list(x_on_behalf_of=obo).data] == [keep.id]
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.batches.create(input_file_id=gone.id, endpoint="/v1/chat/completions", x_on_behalf_of=obo)
    assert 400 <= caught.value.status_code < 500


def test_upload_rejects_the_blob_placeholder_filename(sdk, obo):
    # The SDK documents that the WHATWG placeholder filename "blob" is treated as missing.
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.files.upload(file={"file_name": "blob", "content": b"{}\n"}, purpose="batch", x_on_behalf_of=obo)
    assert caught.value.status_code == 400
    assert sdk.llm.files.list(x_on_behalf_of=obo).data == []


# --- batches list ------------------------------------------------------------------------------------


def test_batches_list_is_newest_first_with_after_limit_and_has_more(sdk, obo):
    file = upload(sdk, jsonl([request_line("b1", "listed")]), obo)
    ids = [
        sdk.llm.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", x_on_behalf_of=obo).id
        for _ in range(5)
    ]
    newest_first = list(reversed(ids))

    full = sdk.llm.batches.list(x_on_behalf_of=obo)
    assert [b.id for b in full.data] == newest_first
    assert full.has_more is False and full.object == "list"
    assert (full.first_id, full.last_id) == (newest_first[0], newest_first[-1])

    page = sdk.llm.batches.list(limit=2, x_on_behalf_of=obo)
    assert [b.id for b in page.data] == newest_first[:2] and page.has_more is True
    page = sdk.llm.batches.list(limit=2, after=page.last_id, x_on_behalf_of=obo)
    assert [b.id for b in page.data] == newest_first[2:4] and page.has_more is True
    page = sdk.llm.batches.list(limit=2, after=page.last_id, x_on_behalf_of=obo)
    assert [b.id for b in page.data] == newest_first[4:] and page.has_more is False

    exact = sdk.llm.batches.list(limit=5, x_on_behalf_of=obo)
    assert len(exact.data) == 5 and exact.has_more is False
    for batch_id in ids:
        wait_done(sdk, batch_id, obo)


@pytest.mark.parametrize("limit", [0, 101])
def test_batches_list_limit_outside_1_to_100_is_a_400(sdk, obo, limit):
    with pytest.raises(mka1_errors.SDKDefaultError) as caught:
        sdk.llm.batches.list(limit=limit, x_on_behalf_of=obo)
    assert caught.value.status_code == 400


def test_cancel_through_the_sdk(sdk, obo):
    tag = uuid.uuid4().hex[:8]
    lines = [request_line(f"x{i}", f"cancel me {i} {tag} [sleep:0.4]") for i in range(6)]
    file = upload(sdk, jsonl(lines), obo)
    created = sdk.llm.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", max_concurrency=1, x_on_behalf_of=obo
    )
    cancelled = sdk.llm.batches.cancel(batch_id=created.id, x_on_behalf_of=obo)
    assert cancelled.id == created.id
    assert cancelled.status in ("cancelling", "cancelled")
    assert cancelled.cancelling_at is not None
    final = wait_done(sdk, created.id, obo)
    assert final.status == "cancelled"
    assert final.cancelled_at is not None and final.cancelled_at >= final.cancelling_at
    assert final.request_counts.total == 6
    assert final.request_counts.completed + final.request_counts.failed == 6


def test_a_unicode_filename_round_trips_and_downloads(sdk, obo):
    data = jsonl([request_line("n", "named")])
    file = upload(sdk, data, obo, name="données été.jsonl")
    assert file.filename == "données été.jsonl"
    assert sdk.llm.files.get(file_id=file.id, x_on_behalf_of=obo).filename == "données été.jsonl"
    content, _ = download(sdk, file.id, obo)
    assert content == data


@pytest.mark.parametrize("name", ["requests", "batch.input", "upload.JSONL"])
def test_a_batch_file_downloads_with_the_sdk_whatever_its_name(sdk, obo, name):
    data = jsonl([request_line("n", "named")])
    file = upload(sdk, data, obo, name=name)
    content, _ = download(sdk, file.id, obo)
    assert content == data


def test_a_batch_file_named_bin_downloads_with_the_sdk(sdk, obo):
    data = jsonl([request_line("n", "named")])
    file = upload(sdk, data, obo, name="requests.bin")
    content, _ = download(sdk, file.id, obo)
    assert content == data
