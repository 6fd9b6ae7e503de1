"""A batch input file is checked while it is uploaded; its batch then skips the validating pass.

The API app and the worker's batch steps run in this process on a real store (SQLite, and PostgreSQL)
and a real folder of blobs; uploads are real multipart requests.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import time

import orjson
import psycopg
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from batchgate import ids
from batchgate.api.app import create_app
from batchgate.api.services import Services
from batchgate.blobs import open_blobs
from batchgate.domain.records import Scope
from batchgate.domain.status import BatchStatus as S
from batchgate.settings import Settings
from batchgate.store import open_store
from batchgate.store.base import KeyRecord
from batchgate.upstream.router import Router
from batchgate.worker.batch_run import BatchRun
from batchgate.worker.context import WorkerContext

CHAT = "/v1/chat/completions"
SECRET = "bg-upload-check-test"


def line(custom_id: str, model: str = "m", url: str = CHAT) -> bytes:
    return orjson.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": custom_id}]},
        }
    )


# 40 requests over 45 lines (blank ones among them), CRLF endings, two models.
CLEAN = b"".join((line(f"r{i}", "m" if i % 7 else "n") if i % 9 else b"  ") + b"\r\n" for i in range(1, 46))


@pytest.fixture(params=["sqlite", "postgresql"])
async def app(request, tmp_path):
    """(client, settings, store, database url): the API over a fresh store, with an API key for owner 'alice'."""
    url = (
        "sqlite:///" + str(tmp_path / "meta.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_server").database()
    )
    settings = Settings(data_dir=tmp_path, database_url=url, shard_lines=4, max_shards_per_batch=8)
    store = await open_store(url)
    blobs = open_blobs(settings.resolved_storage_url)
    key = KeyRecord("key_1", "test", "alice", SECRET[:8], int(time.time()), None)
    await store.create_key(key, ids.hash_secret(SECRET))
    client = TestClient(TestServer(create_app(Services(settings, store, blobs))))
    await client.start_server()
    yield client, settings, store, url
    await client.close()
    await store.close()


HEADERS = {"Authorization": f"Bearer {SECRET}"}


async def upload(client, data: bytes | io.BytesIO, purpose_first: bool = True) -> str:
    form = FormData()
    if purpose_first:
        form.add_field("purpose", "batch")
    form.add_field("file", data, filename="in.jsonl", content_type="application/jsonl")
    if not purpose_first:
        form.add_field("purpose", "batch")
    async with client.post("/v1/files", data=form, headers=HEADERS) as answer:
        assert answer.status == 200, await answer.text()
        return (await answer.json())["id"]


async def validate(client, settings, store, file_id: str, endpoint: str = CHAT, concurrency: int = 3):
    """Create a batch over the file through the API, let a worker take its validating step; the batch."""
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "max_concurrency": concurrency}
    async with client.post("/v1/batches", json=body, headers=HEADERS) as answer:
        assert answer.status == 200, await answer.text()
        batch_id = (await answer.json())["id"]
    ctx = WorkerContext(settings, store, open_blobs(settings.resolved_storage_url), Router(settings), "w1")
    try:
        await BatchRun(ctx, batch_id).run()
    finally:
        await ctx.router.close()
    return await store.get_batch(batch_id)


def shards(url: str, batch_id: str) -> list[tuple]:
    sql = "SELECT shard, first_line, last_line, start_offset FROM shards WHERE batch_id = {} ORDER BY shard"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(sql.format("?"), (batch_id,)).fetchall()
    with psycopg.connect(url) as db:
        return db.execute(sql.format("%s"), (batch_id,)).fetchall()


async def test_a_batch_over_a_checked_file_gets_what_a_full_pass_would_give(app):
    client, settings, store, url = app
    checked, unchecked = await upload(client, CLEAN), await upload(client, CLEAN, purpose_first=False)
    assert await store.file_summary(checked) is not None
    assert await store.file_summary(unchecked) is None  # the purpose came too late to check on the way in
    for concurrency in (1, 3):
        fast = await validate(client, settings, store, checked, concurrency=concurrency)
        full = await validate(client, settings, store, unchecked, concurrency=concurrency)
        assert fast.status is full.status is S.IN_PROGRESS
        assert (fast.total, fast.model) == (full.total, full.model) == (40, None)
        assert shards(url, fast.id) == shards(url, full.id) and len(shards(url, fast.id)) >= 10


async def test_the_batch_does_not_read_a_checked_file_again(app, tmp_path):
    client, settings, store, _ = app
    file_id = await upload(client, b"".join(line(f"r{i}") + b"\n" for i in range(10)))
    file = await store.get_file(Scope("alice"), file_id)
    # Only the upload's check can know the file: the bytes the batch would read are now broken.
    (tmp_path / "files" / file.storage_key[-2:] / file.storage_key).write_bytes(b"{broken\n" * 10)
    batch = await validate(client, settings, store, file_id)
    assert batch.status is S.IN_PROGRESS and (batch.total, batch.model) == (10, "m")


async def test_a_file_with_errors_is_validated_by_its_batch_with_todays_errors(app):
    client, settings, store, _ = app
    data = b"\n".join([line("a"), b'{"custom_id": "b",', line("c"), line("a"), line("d", url="/v1/embeddings")])
    file_id = await upload(client, data)
    assert await store.file_summary(file_id) is None
    batch = await validate(client, settings, store, file_id)
    assert batch.status is S.FAILED
    assert [(e["code"], e["line"]) for e in batch.errors["data"]] == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 4),
        ("url_mismatch", 5),
    ]
    assert batch.errors["data"][1]["message"] == "Line 4: custom_id 'a' was already used on line 1."


async def test_a_summary_is_not_used_for_another_endpoint_or_under_other_limits(app):
    client, settings, store, url = app
    file_id = await upload(client, CLEAN)
    batch = await validate(client, settings, store, file_id, endpoint="/v1/embeddings")
    assert batch.status is S.FAILED and {e["code"] for e in batch.errors["data"]} == {"url_mismatch"}
    for changed in ({"max_lines": 39}, {"max_line_bytes": 100}):
        batch = await validate(client, dataclasses.replace(settings, **changed), store, file_id)
        assert batch.status is S.FAILED, changed
    batch = await validate(client, dataclasses.replace(settings, shard_lines=20), store, file_id, concurrency=1)
    assert batch.status is S.IN_PROGRESS and batch.total == 40 and len(shards(url, batch.id)) == 2


async def test_deleting_a_file_deletes_its_summary(app):
    client, _, store, _ = app
    file_id = await upload(client, CLEAN)
    assert await store.file_summary(file_id) is not None
    async with client.delete(f"/v1/files/{file_id}", headers=HEADERS) as answer:
        assert answer.status == 200
    assert await store.file_summary(file_id) is None


async def test_a_checked_file_whose_bytes_are_gone_fails_its_batch_as_before(app, tmp_path):
    client, settings, store, _ = app
    file_id = await upload(client, CLEAN)
    file = await store.get_file(Scope("alice"), file_id)
    (tmp_path / "files" / file.storage_key[-2:] / file.storage_key).unlink()
    batch = await validate(client, settings, store, file_id)
    assert batch.status is S.FAILED and [e["code"] for e in batch.errors["data"]] == ["input_file_not_found"]


async def test_ids_that_count_up_are_checked_for_repeats_across_groups_and_after_they_stop(app):
    """The upload counts request-1, request-2, … as ranges (domain/id_runs.py), 10,000 ids at a time: a clean
    file gets its summary, and an id used again far from its first use, or after ids that do not count up,
    still sends the batch to its own pass, which names both lines."""
    client, settings, store, _ = app
    counting = [line(f"request-{n}") for n in range(1, 25_001)]
    clean = await upload(client, io.BytesIO(b"\n".join(counting)))  # aiohttp's form takes 1 MB of bytes at most
    assert (await store.file_summary(clean)).requests == 25_000
    for tail, repeat_at in (
        ([line("request-7")], 25_001),
        ([line("uuid-a"), line("uuid-b"), line("request-7")], 25_003),
    ):
        file_id = await upload(client, io.BytesIO(b"\n".join(counting + tail)))
        assert await store.file_summary(file_id) is None
        batch = await validate(client, settings, store, file_id)
        assert batch.status is S.FAILED
        assert [(e["code"], e["line"]) for e in batch.errors["data"]] == [("duplicate_custom_id", repeat_at)]
        assert batch.errors["data"][0]["message"].endswith("was already used on line 7.")
