"""The openai SDK (`OpenAI(base_url=URL + "/v1")`) against a live gateway and a live mock upstream."""

from __future__ import annotations

import hashlib
import time
import uuid

import openai
import pytest
from openai import OpenAI

from tests.contract.conftest import (
    BATCH_ID,
    TERMINAL,
    http,
    jsonl,
    parse_jsonl,
    request_line,
    wait_until,
    words,
)
from tests.support.servers import upstream_config
from tests.support.wire_fields import BATCH_FIELDS

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3


@pytest.fixture(scope="module")
def gw(make_module_gateway, module_upstream):
    # A short cancel grace keeps the cancel test quick; everything else is the default.
    return make_module_gateway(
        upstream_config(("mock", module_upstream.base_url, ["*"])), env={"BATCHGATE_CANCEL_GRACE_SECONDS": "2"}
    )


@pytest.fixture
def obo() -> str:
    return "oai-" + uuid.uuid4().hex[:12]


@pytest.fixture
def client(gw, obo):
    """An openai client in a private X-On-Behalf-Of namespace, with SDK retries off."""
    with OpenAI(
        base_url=gw.url + "/v1", api_key=gw.key, max_retries=0, default_headers={"X-On-Behalf-Of": obo}
    ) as client:
        yield client


def upload(client: OpenAI, data: bytes, name: str = "in.jsonl"):
    return client.files.create(file=(name, data), purpose="batch")


def wait_done(client: OpenAI, batch_id: str):
    return wait_until(
        lambda: client.batches.retrieve(batch_id), lambda b: b.status in TERMINAL, what=f"batch {batch_id} terminal"
    )


def run(client: OpenAI, lines: list[dict], endpoint: str = "/v1/chat/completions", **create_args):
    file = upload(client, jsonl(lines))
    created = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h", **create_args)
    return file, created, wait_done(client, created.id)


def content(client: OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return parse_jsonl(client.files.content(file_id).content)


def test_full_flow(client, gw, obo):
    texts = {f"r{i}": f"hello number {i}" for i in range(4)}
    file, created, batch = run(
        client, [request_line(cid, t) for cid, t in texts.items()], metadata={"source": "openai-sdk"}
    )
    assert file.object == "file" and file.purpose == "batch" and file.filename == "in.jsonl"
    assert BATCH_ID.match(created.id)
    assert created.object == "batch" and created.input_file_id == file.id

    assert batch.status == "completed"
    assert batch.endpoint == "/v1/chat/completions" and batch.completion_window == "24h"
    assert batch.errors is None and batch.error_file_id is None
    assert batch.expires_at == batch.created_at + 86400
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.failed_at is None and batch.cancelled_at is None and batch.expired_at is None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (4, 4, 0)
    assert batch.metadata == {"source": "openai-sdk"}
    n = [words(t) for t in texts.values()]
    assert batch.usage is not None
    assert batch.usage.input_tokens == sum(n)
    assert batch.usage.output_tokens == sum(w + 1 for w in n)
    assert batch.usage.total_tokens == sum(2 * w + 1 for w in n)
    assert batch.usage.input_tokens_details.cached_tokens == 0
    assert batch.usage.output_tokens_details.reasoning_tokens == 0
    extra = batch.model_extra or {}
    assert isinstance(extra.get("max_concurrency"), int), "max_concurrency travels as an extra field"
    raw = http(gw, "GET", f"/v1/batches/{batch.id}", obo=obo).json
    assert [name for name in BATCH_FIELDS if name not in raw] == []

    output = {line["custom_id"]: line for line in content(client, batch.output_file_id)}
    assert set(output) == set(texts)
    for cid, text in texts.items():
        assert output[cid]["response"]["body"]["choices"][0]["message"]["content"] == f"echo: {text}"
        assert output[cid]["error"] is None


def test_both_dialects_see_the_same_objects(client, gw, obo):
    file, _, batch = run(client, [request_line("x", "same objects")])
    mka1_batch = http(gw, "GET", f"/api/v1/llm/batches/{batch.id}", obo=obo)
    openai_batch = http(gw, "GET", f"/v1/batches/{batch.id}", obo=obo)
    assert mka1_batch.status == openai_batch.status == 200
    assert mka1_batch.json == openai_batch.json
    assert http(gw, "GET", f"/api/v1/llm/files/{file.id}", obo=obo).json == client.files.retrieve(file.id).to_dict()


def test_error_file_keeps_upstream_4xx_and_output_holds_2xx(client, module_upstream):
    tag = uuid.uuid4().hex[:8]
    plan = {
        "ok1": f"fine one {tag}",
        "bad1": f"rejected one {tag} [status:400]",
        "ok2": f"fine two {tag}",
        "bad2": f"rejected two {tag} [status:400]",
        "missing": f"not there {tag} [status:404]",
        "flaky": f"flaky {tag} [flaky:2]",
        "limited": f"limited {tag} [429:1]",
        "broken": f"always broken {tag} [status:500]",
    }
    _, _, batch = run(client, [request_line(cid, text) for cid, text in plan.items()])
    assert batch.status == "completed"
    failed = {"bad1", "bad2", "missing", "broken"}
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        len(plan),
        len(plan) - len(failed),
        len(failed),
    )
    assert batch.output_file_id and batch.error_file_id

    output = content(client, batch.output_file_id)
    errors = content(client, batch.error_file_id)
    all_ids = [line["custom_id"] for line in output + errors]
    assert sorted(all_ids) == sorted(plan), "output ∪ error holds every custom_id exactly once"
    assert {line["custom_id"] for line in errors} == failed

    for line in output:
        assert line["error"] is None
        assert 200 <= line["response"]["status_code"] < 300
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: {plan[line['custom_id']]}"
    expected_status = {"bad1": 400, "bad2": 400, "missing": 404, "broken": 500}
    for line in errors:
        status = expected_status[line["custom_id"]]
        assert line["id"].startswith("batch_req_")
        assert line["response"] is not None, line
        assert line["response"]["status_code"] == status
        assert line["response"]["body"] == {
            "error": {"message": f"mock says {status}", "type": "mock_error", "code": f"mock_{status}"}
        }
        assert line["error"] is not None and line["error"]["code"] and line["error"]["message"]

    attempts: dict[str, int] = {}
    for request in module_upstream.requests():
        if tag in request["text"]:
            attempts[request["text"]] = attempts.get(request["text"], 0) + 1
    # A 4xx other than 408/409/429 is final: sent once. Retryable failures are retried until they succeed.
    assert attempts[plan["bad1"]] == attempts[plan["bad2"]] == attempts[plan["missing"]] == 1
    assert attempts[plan["flaky"]] == 3
    assert attempts[plan["limited"]] == 2
    assert attempts[plan["broken"]] >= 2
    # Usage counts only answered (2xx) lines.
    answered = [plan[c] for c in ("ok1", "ok2", "flaky", "limited")]
    assert batch.usage.input_tokens == sum(words(t) for t in answered)


def test_files_retrieve_content_delete(client):
    data = jsonl([request_line("a", "ça va?"), request_line("b", "second")])
    file = upload(client, data, "data.jsonl")
    assert file.bytes == len(data)
    assert file.id.startswith("file-")
    got = client.files.retrieve(file.id)
    assert (got.id, got.bytes, got.filename, got.purpose) == (file.id, len(data), "data.jsonl", "batch")
    assert got.to_dict().get("sha256") == hashlib.sha256(data).hexdigest()
    assert client.files.content(file.id).content == data

    deleted = client.files.delete(file.id)
    assert deleted.id == file.id and deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(file.id)
    assert [f.id for f in client.files.list()] == []


def test_files_create_honours_expires_after(client):
    file = client.files.create(
        file=("exp.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 7200}
    )
    assert file.expires_at == file.created_at + 7200
    assert client.files.retrieve(file.id).expires_at == file.created_at + 7200


def test_files_auto_paging_and_filters(client):
    ids = [upload(client, jsonl([request_line(f"p{i}", f"page {i}")]), f"p{i}.jsonl").id for i in range(5)]
    newest_first = list(reversed(ids))
    first_page = client.files.list(limit=2)
    assert [f.id for f in first_page.data] == newest_first[:2]
    assert first_page.has_more is True
    assert [f.id for f in client.files.list(limit=2)] == newest_first, "auto-paging walks every page once"
    assert [f.id for f in client.files.list(limit=2, order="asc")] == ids
    assert [f.id for f in client.files.list(purpose="batch")] == newest_first
    assert list(client.files.list(purpose="batch_output")) == []


def test_output_files_are_listed_with_purpose_batch_output(client):
    _, _, batch = run(client, [request_line("o", "out")])
    outputs = [f.id for f in client.files.list(purpose="batch_output")]
    assert outputs == [batch.output_file_id]
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"


def test_batches_auto_paging_newest_first(client):
    file = upload(client, jsonl([request_line("l", "list me")]))
    ids = [
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(5)
    ]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more is True
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]
    second = client.batches.list(limit=2, after=ids[3])
    assert [b.id for b in second.data] == [ids[2], ids[1]]
    for batch_id in ids:
        wait_done(client, batch_id)


def test_cancel_keeps_every_line_exactly_once(client, module_upstream):
    tag = uuid.uuid4().hex[:8]
    texts = {f"c{i}": f"slow {i} {tag} [sleep:0.5]" for i in range(6)}
    file = upload(client, jsonl([request_line(cid, t) for cid, t in texts.items()]))
    created = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"max_concurrency": 1},
    )
    # Cancel once the first request is in flight upstream.
    wait_until(
        lambda: [r for r in module_upstream.requests() if tag in r["text"]],
        bool,
        timeout=15,
        interval=0.05,
        what="first request upstream",
    )
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at is not None
    batch = wait_done(client, created.id)
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None and batch.completed_at is None
    counts = batch.request_counts
    assert counts.total == 6 and counts.completed + counts.failed == 6
    assert counts.failed >= 1

    output, errors = content(client, batch.output_file_id), content(client, batch.error_file_id)
    assert sorted(line["custom_id"] for line in output + errors) == sorted(texts)
    assert len(output) == counts.completed and len(errors) == counts.failed
    for line in output:
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: {texts[line['custom_id']]}"
    unanswered = [line for line in errors if line["response"] is None]
    assert unanswered, "lines that never ran are in the error file"
    assert all(line["error"]["code"] == "batch_cancelled" for line in unanswered)
    sent = {r["text"] for r in module_upstream.requests() if tag in r["text"]}
    assert sent.isdisjoint(texts[line["custom_id"]] for line in unanswered), "an unanswered line was never sent"

    again = client.batches.cancel(created.id)
    assert again.status == "cancelled"


# --- errors map to the SDK's exceptions ----------------------------------------------------------


def test_unknown_ids_raise_not_found(client):
    missing_batch = "batch_" + "0" * 32
    for call in (
        lambda: client.batches.retrieve(missing_batch),
        lambda: client.batches.cancel(missing_batch),
        lambda: client.files.retrieve("file-doesnotexist"),
        lambda: client.files.content("file-doesnotexist"),
        lambda: client.files.delete("file-doesnotexist"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.status_code == 404
        assert isinstance(caught.value.body, dict) and caught.value.body.get("message")


def test_bad_key_raises_authentication_error(gw):
    with OpenAI(base_url=gw.url + "/v1", api_key="bg-not-a-real-key", max_retries=0) as bad:
        for call in (
            lambda: bad.files.list(),
            lambda: bad.batches.list(),
            lambda: bad.files.create(file=("x.jsonl", b"{}\n"), purpose="batch"),
            lambda: bad.batches.retrieve("batch_" + "0" * 32),
        ):
            with pytest.raises(openai.AuthenticationError) as caught:
                call()
            assert caught.value.status_code == 401


def test_bad_input_raises_bad_request(client):
    file = upload(client, jsonl([request_line("v", "valid")]))
    cases = {
        "endpoint": lambda: client.batches.create(
            input_file_id=file.id, endpoint="/v1/completions", completion_window="24h"
        ),
        "completion_window": lambda: client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="169h"
        ),
        "metadata": lambda: client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={f"k{i}": "v" for i in range(17)},
        ),
        "max_concurrency": lambda: client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"max_concurrency": 1025},
        ),
        "purpose": lambda: client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune"),
        "limit": lambda: client.batches.list(limit=0),
    }
    for name, call in cases.items():
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.status_code == 400, name
        assert caught.value.type == "invalid_request_error", name
    assert list(client.batches.list()) == [], "no rejected create left a batch behind"
    assert [f.id for f in client.files.list()] == [file.id], "no rejected upload left a file behind"


def test_batch_from_an_output_file_is_a_bad_request(client):
    _, _, batch = run(client, [request_line("o", "make an output")])
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(
            input_file_id=batch.output_file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert caught.value.param == "input_file_id"


def test_cancel_a_completed_batch_is_a_conflict(client):
    _, _, batch = run(client, [request_line("d", "done")])
    assert batch.status == "completed"
    with pytest.raises(openai.ConflictError) as caught:
        client.batches.cancel(batch.id)
    assert caught.value.status_code == 409
    assert client.batches.retrieve(batch.id).status == "completed"


# --- runtime behaviour seen through the SDK ------------------------------------------------------------


def test_output_expires_after_sets_the_output_files_expiry(client):
    _, _, batch = run(
        client, [request_line("e", "expiring")], output_expires_after={"anchor": "created_at", "seconds": 3600}
    )
    output = client.files.retrieve(batch.output_file_id)
    assert output.expires_at == output.created_at + 3600


def test_request_counts_move_while_the_batch_runs(client):
    tag = uuid.uuid4().hex[:8]
    lines = [request_line(f"m{i}", f"moving {i} {tag} [sleep:0.3]") for i in range(6)]
    file = upload(client, jsonl(lines))
    created = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"max_concurrency": 2},
    )
    seen = []
    deadline = time.monotonic() + 30
    while (batch := client.batches.retrieve(created.id)).status not in TERMINAL:
        assert time.monotonic() < deadline, "batch did not finish"
        if batch.status == "in_progress":
            seen.append((batch.request_counts.total, batch.request_counts.completed))
        time.sleep(0.05)
    assert batch.status == "completed"
    assert seen, "the batch was seen in_progress"
    assert all(total == 6 for total, _ in seen), f"total is known once in progress: {seen}"
    partial = {completed for _, completed in seen if 0 < completed < 6}
    assert partial, f"completed moved while running: {seen}"
    completed_seq = [completed for _, completed in seen]
    assert completed_seq == sorted(completed_seq), "counts never go backwards"


def test_deleting_the_input_file_of_a_running_batch_does_not_break_it(client):
    tag = uuid.uuid4().hex[:8]
    texts = {f"d{i}": f"in use {i} {tag} [sleep:0.25]" for i in range(4)}
    file = upload(client, jsonl([request_line(cid, t) for cid, t in texts.items()]))
    created = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"max_concurrency": 1},
    )
    wait_until(
        lambda: client.batches.retrieve(created.id),
        lambda b: b.status == "in_progress",
        timeout=15,
        interval=0.05,
        what="in_progress",
    )
    try:
        client.files.delete(file.id)
        deleted = True
    except openai.ConflictError:
        deleted = False
    batch = wait_done(client, created.id)
    assert batch.status == "completed", (deleted, batch.errors)
    output = content(client, batch.output_file_id) + content(client, batch.error_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(texts)
    if not deleted:
        assert client.files.retrieve(file.id).id == file.id


def test_a_larger_batch_keeps_every_line_exactly_once(client, module_upstream):
    tag = uuid.uuid4().hex[:8]
    texts = {f"L{i:04d}": f"line {i} {tag}" + (" [status:400]" if i % 37 == 0 else "") for i in range(400)}
    _, _, batch = run(client, [request_line(cid, t) for cid, t in texts.items()])
    bad = {cid for cid, t in texts.items() if "[status:400]" in t}
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        400,
        400 - len(bad),
        len(bad),
    )
    output, errors = content(client, batch.output_file_id), content(client, batch.error_file_id)
    assert sorted(line["custom_id"] for line in output + errors) == sorted(texts)
    assert {line["custom_id"] for line in errors} == bad
    for line in output:
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: {texts[line['custom_id']]}"
    # Results are written in input order.
    assert [line["custom_id"] for line in output] == sorted(line["custom_id"] for line in output)
    sent = [r["text"] for r in module_upstream.requests() if tag in r["text"]]
    assert len(sent) == len(set(sent)) == 400, "every line was sent exactly once"


@pytest.fixture(scope="module")
def troubled(make_module_gateway, module_upstream, module_dir):
    """Upstreams that time out, refuse connections, or do not exist for a model; 2 attempts per line."""
    from tests.support.servers import free_port

    config = f"""
max_attempts = 2

[[upstreams]]
name = "slow"
base_url = "{module_upstream.base_url}"
models = ["slow-*"]
timeout_seconds = 0.5

[[upstreams]]
name = "dead"
base_url = "http://127.0.0.1:{free_port()}/v1"
models = ["dead-*"]

[[upstreams]]
name = "mock"
base_url = "{module_upstream.base_url}"
models = ["known-*"]
"""
    return make_module_gateway(config, name="troubled")


def test_one_bad_line_never_fails_the_run(troubled, module_upstream):
    tag = uuid.uuid4().hex[:8]
    plan = {
        "good1": ("known-a", f"good {tag}"),
        "slow": ("slow-a", f"slow {tag} [sleep:3]"),
        "dead": ("dead-a", f"dead {tag}"),
        "nomodel": ("unrouted-model", f"nowhere {tag}"),
        "good2": ("known-b", f"good two {tag}"),
    }
    lines = [request_line(cid, text, model=model) for cid, (model, text) in plan.items()]
    with OpenAI(base_url=troubled.url + "/v1", api_key=troubled.key, max_retries=0) as client:
        _, _, batch = run(client, lines)
        assert batch.status == "completed"
        assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (5, 2, 3)
        output = {line["custom_id"]: line for line in content(client, batch.output_file_id)}
        errors = {line["custom_id"]: line for line in content(client, batch.error_file_id)}
    assert set(output) == {"good1", "good2"}
    assert set(errors) == {"slow", "dead", "nomodel"}
    for cid in errors:
        assert errors[cid]["response"] is None, errors[cid]
        assert errors[cid]["error"]["code"] and errors[cid]["error"]["message"]
    assert errors["slow"]["error"]["code"] == "timeout"
    assert errors["dead"]["error"]["code"] == "upstream_unreachable"
    slow_attempts = [r for r in module_upstream.requests() if r["text"] == plan["slow"][1]]
    assert len(slow_attempts) == 2, "a timed-out line is retried up to max_attempts"


def test_batches_list_pages_hold_20_by_default(client, gw, obo):
    file = upload(client, jsonl([request_line("p", "paged")]))
    ids = [
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(21)
    ]
    page = client.batches.list()
    assert [b.id for b in page.data] == ids[::-1][:20]
    assert page.has_more is True
    raw = http(gw, "GET", "/api/v1/llm/batches", obo=obo).json
    assert len(raw["data"]) == 20 and raw["has_more"] is True
    assert (raw["first_id"], raw["last_id"]) == (ids[20], ids[1])
    assert [b.id for b in client.batches.list()] == ids[::-1]
    for batch_id in ids:
        wait_done(client, batch_id)
