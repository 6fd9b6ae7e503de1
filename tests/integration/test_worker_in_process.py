"""The worker's stages in one process, with an upstream kind of the test's own registered in the registry."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import orjson
import pytest

from batchgate.blobs import open_blobs
from batchgate.domain.records import BatchRecord, FileRecord, Scope
from batchgate.domain.results import Outcome
from batchgate.domain.status import TERMINAL
from batchgate.domain.status import BatchStatus as S
from batchgate.settings import Settings, UpstreamConfig
from batchgate.store import ShardLease
from batchgate.upstream import router as router_module
from batchgate.upstream.base import SHARED_CACHE
from batchgate.upstream.router import Router
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import ShardEnding, _Unsent
from batchgate.worker.worker import Worker

ALICE = Scope("alice")


class ExplodingUpstream:
    """Answers every request at once, except that a request mentioning "boom" raises: a bug inside batchgate."""

    prefix_cache = staticmethod(lambda endpoint: SHARED_CACHE)

    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name

    async def attempt(self, endpoint, body, payload) -> tuple[Outcome, None]:
        text = body["messages"][0]["content"]
        if "boom" in text:
            raise RuntimeError("kaboom")
        return Outcome(
            status_code=200, body={"echo": text, "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
        ), None

    async def close(self) -> None:
        return None


@pytest.fixture
async def parts(tmp_path, monkeypatch, memory_store):
    monkeypatch.setitem(router_module.KINDS, "exploding", ExplodingUpstream)
    settings = Settings(
        data_dir=tmp_path,
        poll_interval_seconds=0.05,
        lease_seconds=2,
        upstreams=(UpstreamConfig("x", "http://unused/v1", kind="exploding"),),
    )
    blobs = open_blobs(settings.resolved_storage_url)
    router = Router(settings)
    yield WorkerContext(settings, memory_store, blobs, router, "w1")
    await router.close()


def chat(custom_id: str, text: str) -> bytes:
    return orjson.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": text}]},
        }
    )


async def add_batch(ctx: WorkerContext, texts: list[str], lines: bytes | None = None, batch_id: str = "batch_1") -> str:
    lines = lines if lines is not None else b"".join(chat(f"c{i}", t) + b"\n" for i, t in enumerate(texts))

    async def chunks():
        yield lines

    file_id = f"file-{batch_id}"
    await ctx.blobs.write(file_id, chunks())
    now = int(time.time())
    await ctx.store.insert_file(
        FileRecord(file_id, ALICE, "in.jsonl", "batch", len(lines), "0" * 64, file_id, now, now + 3600)
    )
    await ctx.store.insert_batch(
        BatchRecord(batch_id, ALICE, "/v1/chat/completions", file_id, "24h", S.VALIDATING, now, now + 3600, 4)
    )
    return batch_id


async def run_to_the_end(ctx: WorkerContext, batch_id: str, timeout: float = 20) -> None:
    """A worker drives the batch (its steps and its shards) until it is terminal."""
    worker = asyncio.create_task(Worker(ctx).run())
    try:
        async with asyncio.timeout(timeout):
            while (await ctx.store.get_batch(batch_id)).status not in TERMINAL:
                await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def read_file(ctx: WorkerContext, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    file = await ctx.store.get_file(ALICE, file_id)
    data = b"".join([chunk async for chunk in ctx.blobs.read(file.storage_key)])
    return [orjson.loads(line) for line in data.splitlines()]


async def test_a_bug_on_one_line_costs_that_line_only(parts):
    ctx = parts
    batch_id = await add_batch(ctx, ["fine 0", "boom", "fine 2"])
    await run_to_the_end(ctx, batch_id)

    batch = await ctx.store.get_batch(batch_id)
    assert batch.status is S.COMPLETED
    assert (batch.total, batch.completed, batch.failed) == (3, 2, 1)
    output = await read_file(ctx, batch.output_file_id)
    errors = await read_file(ctx, batch.error_file_id)
    assert [l["custom_id"] for l in output] == ["c0", "c2"]
    assert [l["response"]["body"]["echo"] for l in output] == ["fine 0", "fine 2"]
    [error] = errors
    assert error["custom_id"] == "c1" and error["response"] is None
    assert error["error"]["code"] == "internal_error" and "kaboom" in error["error"]["message"]
    assert (batch.usage.input_tokens, batch.usage.output_tokens, batch.usage.total_tokens) == (4, 6, 10)
    assert batch.model == "m" and batch.to_wire()["model"] == "m", "every line names model m"


async def test_many_small_shards_each_read_from_their_own_offset(parts):
    """Blank lines, CRLF endings and a missing final newline: every shard starts at the right byte."""
    ctx = dataclasses.replace(parts, settings=dataclasses.replace(parts.settings, shard_lines=2))
    texts = [f"shard text {i}" + " pad" * (i % 4) for i in range(11)]
    raw = b""
    for i, text in enumerate(texts):
        raw += chat(f"c{i}", text) + (b"\r\n" if i % 2 else b"\n") + (b"\n   \n" if i % 3 == 0 else b"")
    batch_id = await add_batch(ctx, texts, raw.rstrip(b"\n"))
    await run_to_the_end(ctx, batch_id)

    batch = await ctx.store.get_batch(batch_id)
    assert batch.status is S.COMPLETED and (batch.total, batch.completed, batch.failed) == (11, 11, 0)
    output = await read_file(ctx, batch.output_file_id)
    assert [l["custom_id"] for l in output] == [f"c{i}" for i in range(11)]
    assert [l["response"]["body"]["echo"] for l in output] == texts, "each line got its own answer"


class ClaimsSeen:
    """A store that sets `idle` each time a worker's round of claims found nothing: the worker now waits."""

    def __init__(self, store):
        self._store, self.idle = store, asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def claim_shards(self, *args, **kwargs):
        leases = await self._store.claim_shards(*args, **kwargs)
        if not leases:
            self.idle.set()
        return leases


async def test_a_worker_cancelled_in_the_turn_a_wake_comes_stops(parts):
    """A shard ending (or a batch created) wakes the worker just as it is cancelled: it stops all the same."""
    store = ClaimsSeen(parts.store)
    ctx = dataclasses.replace(
        parts, store=store, settings=dataclasses.replace(parts.settings, poll_interval_seconds=60)
    )
    worker = Worker(ctx)
    running = asyncio.create_task(worker.run())
    try:
        await store.idle.wait()
        worker.wake()
        running.cancel()
        await asyncio.wait([running], timeout=10)
        assert running.cancelled(), "the worker went on after its cancel"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


class HoldingUpstream:
    """Answers at once, except lines mentioning "hold", which wait for `release`; counts lines in flight."""

    release: asyncio.Event
    sent: list[str]
    in_flight = peak = 0
    prefix_cache = staticmethod(lambda endpoint: SHARED_CACHE)

    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name

    async def attempt(self, endpoint, body, payload) -> tuple[Outcome, None]:
        text = body["messages"][0]["content"]
        cls = HoldingUpstream
        cls.sent.append(text)
        cls.in_flight += 1
        cls.peak = max(cls.peak, cls.in_flight)
        try:
            if "hold" in text:
                await cls.release.wait()
            return Outcome(status_code=200, body={"echo": text}), None
        finally:
            cls.in_flight -= 1

    async def close(self) -> None:
        return None


@pytest.fixture
async def holding(tmp_path, monkeypatch, memory_store):
    """A worker context on the holding upstream, with shards of 2 lines and 2 shards of a batch at once."""
    monkeypatch.setitem(router_module.KINDS, "holding", HoldingUpstream)
    HoldingUpstream.release, HoldingUpstream.sent = asyncio.Event(), []
    HoldingUpstream.in_flight = HoldingUpstream.peak = 0
    settings = Settings(
        data_dir=tmp_path,
        poll_interval_seconds=0.05,
        lease_seconds=2,
        shard_lines=2,
        max_shards_per_batch=2,
        upstreams=(UpstreamConfig("h", "http://unused/v1", kind="holding"),),
    )
    router = Router(settings)
    yield WorkerContext(settings, memory_store, open_blobs(settings.resolved_storage_url), router, "w1")
    await router.close()


async def held_then_released(
    ctx: WorkerContext, texts: list[str], held: int, also: Callable[[], bool] = lambda: True
) -> set[int]:
    """Run the batch until `held` lines hang upstream (and `also()`); return the lines sent by then;
    release; finish."""
    batch_id = await add_batch(ctx, texts)
    worker = asyncio.create_task(Worker(ctx).run())
    try:
        async with asyncio.timeout(20):
            while sum("hold" in t for t in HoldingUpstream.sent) < held or not also():
                await asyncio.sleep(0.02)
        sent = {texts.index(t) + 1 for t in HoldingUpstream.sent}
        HoldingUpstream.release.set()
        async with asyncio.timeout(20):
            while (await ctx.store.get_batch(batch_id)).status not in TERMINAL:
                await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    batch = await ctx.store.get_batch(batch_id)
    assert batch.status is S.COMPLETED and (batch.total, batch.completed) == (len(texts), len(texts))
    assert sorted(HoldingUpstream.sent) == sorted(texts), "every line sent once"
    assert HoldingUpstream.peak <= 4, "never more lines in flight than the batch's max_concurrency"
    return sent


async def test_a_shard_awaiting_its_last_answers_hands_its_window_to_the_next_shard(holding):
    """Each shard's second line hangs: each lane of 2 moves on to a later shard instead of idling."""
    texts = [f"line {i}" + (" hold" if i % 2 else "") for i in range(12)]
    sent = await held_then_released(holding, texts, held=4)
    assert len({(line - 1) // 2 for line in sent}) == 4, "both lanes moved on to a second shard"


async def test_a_lane_with_no_shard_left_gives_its_slots_to_a_lane_still_sending(holding):
    """Two shards of 6 lines: the first answers at once, every line of the second hangs. When the first
    lane runs out of shards its 2 slots go to the second lane, which then has all 4 lines in flight."""
    ctx = dataclasses.replace(holding, settings=dataclasses.replace(holding.settings, shard_lines=6))
    texts = [f"fast {i}" for i in range(6)] + [f"slow {i} hold" for i in range(6)]
    sent = await held_then_released(ctx, texts, held=4)
    assert {7, 8, 9, 10} <= sent


class BrokenAfterValidation:
    """Blobs where `key` can be read once (validation); every later read (a shard's) fails."""

    def __init__(self, blobs, key: str):
        self._blobs = blobs
        self._key = key
        self.reads = 0

    def __getattr__(self, name):
        return getattr(self._blobs, name)

    def read(self, key: str, *args, **kwargs):
        if key == self._key:
            self.reads += 1
            if self.reads > 1:
                raise OSError("the disk under this file is broken")
        return self._blobs.read(key, *args, **kwargs)


async def test_a_batch_whose_shards_keep_failing_rests_alone(parts):
    """A failing shard run makes its batch wait (here 2 × 2 s) before the worker claims it again,
    while the worker's other batches are claimed at once."""
    blobs = BrokenAfterValidation(parts.blobs, "file-batch_broken")
    # cache_aware off: validation then reads the file once (no pass for the dispatch plan)
    settings = dataclasses.replace(parts.settings, shard_lines=2, poll_interval_seconds=2.0, cache_aware=False)
    ctx = dataclasses.replace(parts, blobs=blobs, settings=settings)
    await add_batch(ctx, [f"broken {i}" for i in range(6)], batch_id="batch_broken")
    worker = Worker(ctx)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while blobs.reads < 2:
                await asyncio.sleep(0.01)
        healthy = await add_batch(ctx, ["fine 0", "fine 1"], batch_id="batch_fine")
        worker.wake()
        async with asyncio.timeout(3):  # well before the broken batch's rest (4 s) is over
            while (await ctx.store.get_batch(healthy)).completed < 2:
                await asyncio.sleep(0.02)
        assert (await ctx.store.get_batch("batch_broken")).status is S.IN_PROGRESS
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_shard_sends_its_lines_with_a_task_per_slot_not_per_line(parts, monkeypatch):
    """60 lines through a window of 4: a few long-lived senders, not a task for each line."""
    loop = asyncio.get_running_loop()
    created: list[str] = []

    def counting_factory(loop, coro, **kwargs):
        created.append(getattr(coro, "__qualname__", type(coro).__name__))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting_factory)
    try:
        batch_id = await add_batch(parts, [f"line {i}" for i in range(60)])
        await run_to_the_end(parts, batch_id)
    finally:
        loop.set_task_factory(None)
    batch = await parts.store.get_batch(batch_id)
    assert batch.status is S.COMPLETED and batch.completed == 60
    senders = created.count("execute.<locals>.sender")
    assert 1 <= senders <= 4, created
    assert len(created) < 60, "no task per line"


class CountingReads:
    """Blobs that count the reads of one key."""

    def __init__(self, blobs, key: str):
        self._blobs, self._key, self.reads = blobs, key, 0

    def __getattr__(self, name):
        return getattr(self._blobs, name)

    def read(self, key: str, *args, **kwargs):
        self.reads += key == self._key
        return self._blobs.read(key, *args, **kwargs)


async def test_the_next_shard_reads_its_first_line_while_its_lane_is_still_full(holding):
    """Every line hangs: the two lanes (2 slots each) are full with shards 1 and 2. Their successors are
    claimed as soon as their last lines left, and read their first lines before any slot frees up, so
    they send the moment an answer comes."""
    blobs = CountingReads(holding.blobs, "file-batch_1")
    ctx = dataclasses.replace(holding, blobs=blobs)
    texts = [f"line {i} hold" for i in range(8)]
    # Reads: validation, shards 1 and 2, then their successors 3 and 4.
    sent = await held_then_released(ctx, texts, held=4, also=lambda: blobs.reads >= 5)
    assert sent == {1, 2, 3, 4}, "the successors wait for a free slot"


class GatedReads:
    """Blobs whose reads yield their first chunk at once and every later one only once `gate` is set."""

    def __init__(self, blobs, gate: asyncio.Event):
        self._blobs, self._gate = blobs, gate

    def __getattr__(self, name):
        return getattr(self._blobs, name)

    async def read(self, key: str, *args, **kwargs):
        async for index, chunk in aenumerate(self._blobs.read(key, *args, **kwargs)):
            if index:
                await self._gate.wait()
            yield chunk


async def aenumerate(items):
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def test_a_line_read_while_nothing_may_be_sent_is_kept_for_later(parts):
    """A sender's read of the next line outlasted its lease (or a stop came): the line is not handed
    out to be sent, and is the first one handed out once sending may go on."""
    long_lines = b"".join(chat(f"c{i}", "x" * 40_000) + b"\n" for i in range(3))  # one line per 64 KiB read
    batch_id = await add_batch(parts, [], long_lines)
    gate = asyncio.Event()
    ctx = dataclasses.replace(parts, blobs=GatedReads(parts.blobs, gate))
    batch = await ctx.store.get_batch(batch_id)
    source = _Unsent(ctx, batch, ShardLease(batch_id, 0, "w1", 1, 3, 0, 1), ShardEnding(), 1)
    sending = True
    try:
        await source.prime()
        assert (await source.take(lambda: sending))[0].line == 1
        second = asyncio.create_task(source.take(lambda: sending))
        await asyncio.sleep(0.05)
        assert not second.done(), "line 2 waits for the next chunk"
        sending = False  # meanwhile the lease may have lapsed
        gate.set()
        assert await second is None and not source.ended
        sending = True
        assert (await source.take(lambda: sending))[0].line == 2
        assert (await source.take(lambda: sending))[0].line == 3 and source.ended
    finally:
        await source.close()


class Answered:
    """The store, with the lines `done` already answered (as when a shard resumes after a crash)."""

    def __init__(self, store, done: set[int]):
        self._store, self._done = store, done

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def done_lines(self, batch_id, first_line, last_line):
        for line in sorted(self._done):
            if first_line <= line <= last_line:
                yield line


async def test_a_resumed_shard_hands_out_only_its_unanswered_lines_and_skips_blank_ones(parts):
    lines = chat("c1", "a") + b"\n" + chat("c2", "b") + b"\n\n" + chat("c4", "d") + b"\n" + chat("c5", "e")
    lines += b"\n  \n" + chat("c7", "g") + b"\n" + chat("c8", "h") + b"\n"
    batch_id = await add_batch(parts, [], lines)
    ctx = dataclasses.replace(parts, store=Answered(parts.store, {2, 4, 8}))
    batch = await ctx.store.get_batch(batch_id)
    source = _Unsent(ctx, batch, ShardLease(batch_id, 0, "w1", 1, 8, 0, 1), ShardEnding(), 1)
    try:
        await source.prime()
        handed = []
        while (taken := await source.take(lambda: True)) is not None:
            handed.append((taken[0].line, taken[0].custom_id))
    finally:
        await source.close()
    assert handed == [(1, "c1"), (5, "c5"), (7, "c7")]
    assert source.ended and source.failure is None


@pytest.mark.parametrize(("lead", "near_at"), [(3, 6), (1, 8), (20, 1)])
async def test_a_shard_says_its_end_is_near_a_window_before_it_has_sent_all(parts, lead, near_at):
    """The next shard gets ready while this one sends its last window (worker.py hands the lane on):
    `nearly_sent` once, when a line of the last `lead` is taken (or with the last at the latest), then
    `sent_all` once, with the last line."""
    batch_id = await add_batch(parts, [], b"".join(chat(f"c{i}", "x") + b"\n" for i in range(1, 9)))
    batch = await parts.store.get_batch(batch_id)
    told: list[tuple[str, int]] = []
    taken: list[int] = []
    ending = ShardEnding(lambda: told.append(("near", len(taken))), lambda: told.append(("all", len(taken))))
    source = _Unsent(parts, batch, ShardLease(batch_id, 0, "w1", 1, 8, 0, 1), ending, lead)
    try:
        await source.prime()
        while (line := await source.take(lambda: True)) is not None:
            taken.append(line[0].line)
    finally:
        await source.close()
    # Told while the line that tripped it was being handed out: `taken` had the lines before it.
    assert taken == list(range(1, 9))
    assert told == [("near", near_at - 1), ("all", 7)]
