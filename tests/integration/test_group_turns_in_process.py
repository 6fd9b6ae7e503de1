"""Behind a prompt cache per slot (the built-in llama.cpp model), prefix groups take turns: a group has
one line out while another group's line can go (docs/caching.md), and every line is answered once, in
input order in the output."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter

import orjson
import pytest

from batchgate.blobs import open_blobs
from batchgate.domain.records import BatchRecord
from batchgate.domain.results import Outcome
from batchgate.domain.status import BatchStatus as S
from batchgate.settings import Settings, UpstreamConfig
from batchgate.store import ShardLease
from batchgate.upstream import router as router_module
from batchgate.upstream.base import PrefixCache
from batchgate.upstream.router import Router
from batchgate.worker.context import WorkerContext
from batchgate.worker.execute import ShardEnding, _Unsent
from tests.integration.test_worker_in_process import Answered, add_batch, read_file, run_to_the_end

SLOTS = 2
GROUPS = 4


class SlottedUpstream:
    """Answers after a short, varied wait, as an engine with a prompt cache per slot; logs each send with
    how many lines of its group were out at that moment."""

    sends: list[tuple[str, int]]  # (text, lines of its group already out)
    crowded: list[str]  # lines sent while one of their group and at least SLOTS lines in all were out
    out: Counter
    peak = 0  # the most lines out at once, all groups

    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name

    def prefix_cache(self, endpoint: str) -> PrefixCache:
        return PrefixCache(SLOTS)

    async def attempt(self, endpoint, body, payload) -> tuple[Outcome, None]:
        cls, text = SlottedUpstream, body["messages"][-1]["content"]
        group = body["messages"][0]["content"]
        cls.sends.append((text, cls.out[group]))
        if cls.out[group] and sum(cls.out.values()) >= SLOTS:
            cls.crowded.append(text)
        cls.out[group] += 1
        cls.peak = max(cls.peak, sum(cls.out.values()))
        try:
            await asyncio.sleep(random.uniform(0.002, 0.02))
            return Outcome(status_code=200, body={"echo": text}), None
        finally:
            cls.out[group] -= 1

    async def close(self) -> None:
        return None


@pytest.fixture
async def slotted(tmp_path, monkeypatch, memory_store):
    monkeypatch.setitem(router_module.KINDS, "slotted", SlottedUpstream)
    SlottedUpstream.sends, SlottedUpstream.out, SlottedUpstream.peak = [], Counter(), 0
    SlottedUpstream.crowded = []

    async def make(cache_aware: bool, **more) -> WorkerContext:
        settings = Settings(
            data_dir=tmp_path,
            poll_interval_seconds=0.05,
            lease_seconds=5,
            cache_aware=cache_aware,
            **more,
            upstreams=(UpstreamConfig("s", "http://unused/v1", kind="slotted"),),
        )
        routers.append(Router(settings))
        return WorkerContext(settings, memory_store, open_blobs(settings.resolved_storage_url), routers[-1], "w1")

    routers: list[Router] = []
    yield make
    for router in routers:
        await router.close()


def grouped_lines(count: int) -> tuple[bytes, dict[str, int]]:
    """`count` chat lines in GROUPS prefix groups shuffled through the file; the group of each line's text."""
    groups = [n % GROUPS for n in range(count)]
    random.Random(14).shuffle(groups)
    lines, group_of = [], {}
    for n, group in enumerate(groups):
        text = f"line {n}"
        group_of[text] = group
        messages = [
            {"role": "system", "content": f"You are assistant number {group}. " + "Share these rules. " * 20},
            {"role": "user", "content": text},
        ]
        line = {"custom_id": f"c{n}", "method": "POST", "url": "/v1/chat/completions"}
        lines.append(orjson.dumps({**line, "body": {"model": "m", "messages": messages}}))
    return b"\n".join(lines) + b"\n", group_of


def doubled_while_others_waited(group_of: dict[str, int]) -> list[str]:
    """The sends that went while a line of their group was out and a line of another group was still unsent."""
    sends = SlottedUpstream.sends
    return [
        text
        for n, (text, out) in enumerate(sends)
        if out and any(group_of[later] != group_of[text] for later, _ in sends[n + 1 :])
    ]


async def run_batch(ctx: WorkerContext, lines: bytes) -> tuple[BatchRecord, list[dict]]:
    batch_id = await add_batch(ctx, [], lines)
    await run_to_the_end(ctx, batch_id)
    batch = await ctx.store.get_batch(batch_id)
    assert batch.status is S.COMPLETED and batch.completed == batch.total
    return batch, await read_file(ctx, batch.output_file_id)


async def test_groups_take_turns_behind_a_cache_per_slot_and_the_output_keeps_input_order(slotted):
    ctx = await slotted(cache_aware=True)
    lines, group_of = grouped_lines(48)
    batch, output = await run_batch(ctx, lines)
    assert batch.grouped and batch.dispatch_key is None, "groups found, and no dispatch copy for a per-slot cache"
    assert [row["custom_id"] for row in output] == [f"c{n}" for n in range(48)], "input order"
    assert sorted(text for text, _ in SlottedUpstream.sends) == sorted(group_of), "every line sent once"
    assert doubled_while_others_waited(group_of) == [], "a second line of a group only when no other group waits"
    assert all(out < SLOTS for _, out in SlottedUpstream.sends), "and never more of one group than the slots"
    assert SlottedUpstream.peak >= 2, "groups run side by side"


async def test_with_cache_aware_off_a_group_runs_twice_at_once_while_others_wait(slotted):
    """The same file in file order: lines of one group overlap although other groups have lines to send."""
    ctx = await slotted(cache_aware=False)
    lines, group_of = grouped_lines(48)
    batch, output = await run_batch(ctx, lines)
    assert not batch.grouped
    assert [row["custom_id"] for row in output] == [f"c{n}" for n in range(48)]
    assert doubled_while_others_waited(group_of), "file order overlaps a group's lines"


async def test_turns_hold_across_the_shards_of_a_batch(slotted):
    """Four shards of 12 lines at once, a slot each: a group's line waits while the group has one out in
    another shard, unless fewer lines than the slots are out in all."""
    ctx = await slotted(cache_aware=True, shard_lines=12, max_shards_per_batch=4)
    lines, group_of = grouped_lines(48)
    batch, output = await run_batch(ctx, lines)
    assert batch.grouped
    assert [row["custom_id"] for row in output] == [f"c{n}" for n in range(48)]
    assert sorted(text for text, _ in SlottedUpstream.sends) == sorted(group_of)
    assert SlottedUpstream.crowded == [], "a busy group's line went while the slots were all taken"
    assert SlottedUpstream.peak >= 2


async def test_a_resumed_shard_taking_turns_hands_out_each_unanswered_line_once(slotted):
    """After a crash (I3): the lines with results are skipped, every other line is handed out exactly once,
    the first ones of distinct groups, and a line handed out while sending may not go is kept for later."""
    ctx = await slotted(cache_aware=True)
    lines, group_of = grouped_lines(24)
    batch_id = await add_batch(ctx, [], lines)
    done = {2, 3, 5, 11, 17, 24}
    ctx = dataclasses.replace(ctx, store=Answered(ctx.store, done))
    batch = dataclasses.replace(await ctx.store.get_batch(batch_id), grouped=True, model="m")
    source = _Unsent(ctx, batch, ShardLease(batch_id, 0, "w1", 1, 24, 0, 1), ShardEnding(), 1)
    handed: list[int] = []
    try:
        await source.prime()
        assert await source.take(lambda: False) is None and not source.ended, "kept for later"
        first = [await source.take(lambda: True) for _ in range(GROUPS)]
        handed += [request.line for request, _ in first]
        assert len({group_of[request.body["messages"][-1]["content"]] for request, _ in first}) == GROUPS
        for _, answered in first:
            answered()
        while (taken := await source.take(lambda: True)) is not None:
            handed.append(taken[0].line)
            taken[1]()
    finally:
        await source.close()
    assert sorted(handed) == sorted(set(range(1, 25)) - done) and source.ended
