"""Uploads are checked on the way in; a batch over a clean file skips validation and answers exactly as before.

A live `batchgate serve` over the embedded stores and over PostgreSQL and S3; the summary row is read
from the gateway's own database, the answers through the SDK.
"""

from __future__ import annotations

import asyncio

import pytest
from openai import OpenAI

from batchgate.store import open_store
from tests.contract.conftest import TERMINAL, jsonl, parse_jsonl, request_line, wait_until
from tests.support.servers import upstream_config

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3
LINES = 23


@pytest.fixture(scope="module")
def sharded(make_module_gateway, module_upstream):
    """Shards of 3 requests, so a small file has several."""
    return make_module_gateway(
        upstream_config(("mock", module_upstream.base_url, ["*"])), name="sharded", env={"BATCHGATE_SHARD_LINES": "3"}
    )


def summary_of(gateway, file_id: str):
    url = gateway.env.get("BATCHGATE_DATABASE_URL") or f"sqlite:///{(gateway.data_dir / 'batchgate.db').resolve()}"

    async def read():
        store = await open_store(url)
        try:
            return await store.file_summary(file_id)
        finally:
            await store.close()

    return asyncio.run(read())


def run(gateway, obo: str, data: bytes, max_concurrency: int | None = None):
    extra = {"extra_body": {"max_concurrency": max_concurrency}} if max_concurrency else {}
    with OpenAI(
        base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, default_headers={"X-On-Behalf-Of": obo}
    ) as client:
        file = client.files.create(file=("input.jsonl", data), purpose="batch")
        created = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", **extra
        )
        batch = wait_until(
            lambda: client.batches.retrieve(created.id), lambda b: b.status in TERMINAL, what="terminal status"
        )
        output = client.files.content(batch.output_file_id).read() if batch.output_file_id else b""
    return file, batch, parse_jsonl(output)


def test_a_clean_upload_is_summarised_and_its_batch_answers_every_line(sharded, unique_obo):
    lines = [request_line(f"q{i}", f"question {i}") if i % 5 else b"" for i in range(LINES + LINES // 4 + 1)]
    data = jsonl(lines, b"\r\n")
    file, batch, output = run(sharded, unique_obo, data, max_concurrency=4)
    summary = summary_of(sharded, file.id)
    assert summary is not None and summary.requests == LINES and summary.endpoint == "/v1/chat/completions"
    assert batch.status == "completed", batch.errors
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (LINES, LINES, 0)
    answers = {o["custom_id"]: o["response"]["body"]["choices"][0]["message"]["content"] for o in output}
    assert answers == {f"q{i}": f"echo: question {i}" for i in range(len(lines)) if i % 5}


def test_a_file_with_errors_is_not_summarised_and_its_batch_names_them(sharded, unique_obo):
    data = jsonl([request_line("a", "x"), b"{oops", request_line("a", "y"), request_line("b", "z")])
    file, batch, _ = run(sharded, unique_obo, data)
    assert summary_of(sharded, file.id) is None
    assert batch.status == "failed"
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_json_line", 2), ("duplicate_custom_id", 3)]
