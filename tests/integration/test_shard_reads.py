"""A shard reads about the bytes of its own lines, not a fixed megabyte of the file (invariant I4).

Several shards of a batch run at once; each used to read and split a whole CHUNK (thousands of
lines) to use a few hundred, so a big file held far more in memory than a small one.
"""

from __future__ import annotations

import time
from contextlib import aclosing

import orjson
import pytest

from batchgate.blobs import CHUNK, open_blobs
from batchgate.domain.records import BatchRecord, FileRecord, Scope
from batchgate.domain.status import BatchStatus
from batchgate.settings import Settings, UpstreamConfig
from batchgate.store import ShardLease
from batchgate.worker.context import WorkerContext
from batchgate.worker.inputs import SHARD_FIRST_CHUNK, located_input_chunks

ALICE = Scope("alice")
LINES = 20_000


class CountingBlobs:
    """The real local blob store, noting the size of every chunk it hands out."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    async def read(self, key: str, offset: int = 0, first_chunk: int = CHUNK):
        async with aclosing(self.inner.read(key, offset, first_chunk)) as chunks:
            async for chunk in chunks:
                self.sizes.append(len(chunk))
                yield chunk

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def chat(i: int) -> bytes:
    return (
        orjson.dumps(
            {
                "custom_id": f"c{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]},
            }
        )
        + b"\n"
    )


@pytest.fixture
async def ctx(tmp_path, memory_store):
    settings = Settings(data_dir=tmp_path, upstreams=(UpstreamConfig("x", "http://unused/v1"),))
    store = memory_store
    blobs = CountingBlobs(open_blobs(settings.resolved_storage_url))
    lines = [chat(i) for i in range(1, LINES + 1)]

    async def chunks():
        yield b"".join(lines)

    size = await blobs.write("file-in", chunks())
    now = int(time.time())
    await store.insert_file(FileRecord("file-in", ALICE, "in.jsonl", "batch", size, "0" * 64, "file-in", now, now + 60))
    yield WorkerContext(settings, store, blobs, None, "w1"), lines


def batch() -> BatchRecord:
    now = int(time.time())
    return BatchRecord(
        "batch_1", ALICE, "/v1/chat/completions", "file-in", "24h", BatchStatus.IN_PROGRESS, now, now + 60, 64
    )


async def read_shard(ctx: WorkerContext, first: int, last: int, offset: int) -> list[int]:
    lease = ShardLease("batch_1", 0, "w1", first, last, offset, 8)
    async with aclosing(located_input_chunks(ctx, batch(), lease)) as chunks:
        return [item.line async for located in chunks for item in located]


async def test_a_shard_in_a_big_file_reads_about_its_own_bytes(ctx):
    ctx, lines = ctx
    first, last = 10_001, 10_500
    offset = sum(len(line) for line in lines[: first - 1])
    shard_bytes = sum(len(line) for line in lines[first - 1 : last])

    assert await read_shard(ctx, first, last, offset) == list(range(first, last + 1))
    assert sum(ctx.blobs.sizes) <= 2 * shard_bytes + SHARD_FIRST_CHUNK < CHUNK // 4


async def test_a_shard_bigger_than_its_first_read_reads_on_to_its_last_line(ctx):
    ctx, lines = ctx
    shard_bytes = sum(len(line) for line in lines[:5000])
    assert shard_bytes > 4 * SHARD_FIRST_CHUNK

    assert await read_shard(ctx, 1, 5000, 0) == list(range(1, 5001))
    assert ctx.blobs.sizes[0] == SHARD_FIRST_CHUNK
    assert sum(ctx.blobs.sizes) <= 2 * shard_bytes + SHARD_FIRST_CHUNK


async def test_a_reader_of_the_whole_file_reads_whole_chunks(ctx):
    ctx, lines = ctx
    whole = [item.line async for located in located_input_chunks(ctx, batch()) for item in located]
    assert whole == list(range(1, LINES + 1))
    assert sum(map(len, lines)) > 2 * CHUNK
    assert ctx.blobs.sizes[:-1] == [CHUNK] * (len(ctx.blobs.sizes) - 1)
