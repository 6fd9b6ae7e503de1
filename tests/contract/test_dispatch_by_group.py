"""Cache-aware dispatch: the lines of a prefix group are sent together, their first one ahead (a shared
prefix cache), or take turns (a cache per slot), and the output keeps input order (docs/caching.md), also
across cancel, expiry and kill -9 (I1–I3)."""

from __future__ import annotations

import itertools
import json
import random
import time

import pytest

from tests.contract.conftest import http
from tests.contract.test_crash_recovery import kill_now, upload_unchecked
from tests.support.lifecycle import (
    CHAT,
    assert_counts,
    assert_partition,
    client,
    config,
    db_batch,
    jsonl,
    outputs,
    recorded_lines,
    start_batch,
    stop_mock,
    texts_of,
    wait_status,
    wait_until,
)
from tests.support.servers import MockUpstream

GROUPS = 4


def grouped_line(custom_id: str, group: int, text: str) -> dict:
    """A chat line whose system prompt names its prefix group; the mock logs the user text."""
    system = f"You are assistant number {group}. " + "Follow these shared instructions. " * 20
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {"model": "m", "messages": messages}}


def shuffled(count: int, seed: int = 14) -> list[tuple[str, int, str]]:
    """(custom_id, group, text) for `count` lines whose groups are shuffled through the file."""
    groups = [n % GROUPS for n in range(count)]
    random.Random(seed).shuffle(groups)
    return [(f"c{n:04d}", group, f"g{group} line {n}") for n, group in enumerate(groups)]


def group_order(lines: list[tuple[str, int, str]]) -> list[str]:
    """The texts in dispatch order: groups by their first line, lines in file order within a group."""
    firsts = {group: n for n, (_, group, _) in reversed(list(enumerate(lines)))}
    return [text for _, _, text in sorted(lines, key=lambda line: (firsts[line[1]], line[0]))]


def dispatch_copies(gw) -> list:
    return list(gw.data_dir.rglob("dispatch-*"))


@pytest.fixture
def connect():
    """connect(gateway) → an SDK client, closed at the end: a socket left to the collector is a warning."""
    made = []

    def make(gateway):
        made.append(client(gateway))
        return made[-1]

    yield make
    for api in made:
        api.close()


@pytest.fixture
def mock(tmp_path):
    upstream = MockUpstream(tmp_path, latency=0.01)
    yield upstream
    stop_mock(upstream)


@pytest.fixture
def slow_mock(tmp_path):
    upstream = MockUpstream(tmp_path, latency=0.1)
    yield upstream
    stop_mock(upstream)


SMALL_SHARDS = {"BATCHGATE_SHARD_LINES": "16"}
# The upstream's prefix cache: shared (vLLM, SGLang; the default) or per slot (llama.cpp), as its table says.
CACHES = pytest.mark.parametrize("cache", [{}, {"prompt_cache_slots": 2}], ids=["shared", "per-slot"])


@pytest.mark.parametrize("checked_at_upload", [True, False], ids=["upload-summary", "full-validation"])
def test_lines_go_out_group_by_group_and_come_back_in_input_order(make_gateway, connect, mock, checked_at_upload):
    gw = make_gateway(config({"name": "mock", "base_url": mock.base_url}), env=SMALL_SHARDS)
    api = connect(gw)
    lines = shuffled(96)
    requests = [grouped_line(c, g, t) for c, g, t in lines]
    if checked_at_upload:
        _, batch = start_batch(api, requests, max_concurrency=1)  # one slot: arrival order is dispatch order
    else:
        file_id = upload_unchecked(gw, jsonl(requests))
        batch = api.batches.create(
            input_file_id=file_id, endpoint=CHAT, completion_window="24h", extra_body={"max_concurrency": 1}
        )
    done = wait_status(api, batch.id)
    assert done.status == "completed"

    assert texts_of(mock.requests()) == group_order(lines)
    output, errors = outputs(api, done)
    assert errors == []
    assert [line["custom_id"] for line in output] == [c for c, _, _ in lines], "the output keeps input order"
    for line, (_, _, text) in zip(output, lines, strict=True):
        assert line["response"]["body"]["choices"][0]["message"]["content"] == "echo: " + text
    assert_counts(done, 96)
    assert dispatch_copies(gw) == [], "the dispatch copy is deleted once the batch ends"


def test_with_cache_aware_off_lines_go_out_in_file_order(make_gateway, connect, mock):
    gw = make_gateway(
        config({"name": "mock", "base_url": mock.base_url}), env={**SMALL_SHARDS, "BATCHGATE_CACHE_AWARE": "false"}
    )
    api = connect(gw)
    lines = shuffled(48)
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=1)
    assert wait_status(api, batch.id).status == "completed"
    assert texts_of(mock.requests()) == [t for _, _, t in lines]


def test_a_groups_first_line_is_answered_before_its_siblings_are_sent(make_gateway, connect, mock):
    gw = make_gateway(
        config({"name": "mock", "base_url": mock.base_url}), env={"BATCHGATE_CACHE_WARM_WAIT_SECONDS": "30"}
    )
    api = connect(gw)
    texts = ["leader [sleep:1]"] + [f"sibling {n}" for n in range(15)]
    _, batch = start_batch(api, [grouped_line(f"s{n}", 0, t) for n, t in enumerate(texts)], max_concurrency=8)
    assert wait_status(api, batch.id).status == "completed"
    arrivals = {r["text"]: r["t"] for r in mock.requests()}
    answered = arrivals[texts[0]] + 1  # the leader sleeps a second at the mock before it answers
    assert all(arrivals[t] >= answered for t in texts[1:]), "a sibling went out before its leader's answer"


def test_siblings_wait_for_a_slow_leader_only_a_bounded_time(make_gateway, connect, mock):
    gw = make_gateway(
        config({"name": "mock", "base_url": mock.base_url}), env={"BATCHGATE_CACHE_WARM_WAIT_SECONDS": "0.1"}
    )
    api = connect(gw)
    texts = ["leader [sleep:5]"] + [f"sibling {n}" for n in range(7)]
    _, batch = start_batch(api, [grouped_line(f"s{n}", 0, t) for n, t in enumerate(texts)], max_concurrency=8)
    wait_until(
        lambda: len(mock.requests()) == len(texts), timeout=4.5, what="the siblings sent within the leader's 5 s"
    )
    assert wait_status(api, batch.id).status == "completed"


@CACHES
def test_kill_9_of_a_grouped_batch_resumes_without_resending_recorded_lines(make_gateway, connect, slow_mock, cache):
    upstream = {"name": "mock", "base_url": slow_mock.base_url, **cache}
    gw = make_gateway(config(upstream), env={"BATCHGATE_SHARD_LINES": "40"})
    api = connect(gw)
    db = gw.data_dir / "batchgate.db"
    lines = shuffled(240)
    line_of = {text: n for n, (_, _, text) in enumerate(lines, 1)}
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=8)

    kill_now(gw, api, batch.id, 60)
    assert db_batch(db, batch.id)["status"] == "in_progress", "the kill should land mid-run"
    row = db_batch(db, batch.id)
    assert row["grouped"] == 1 and (row["dispatch_key"] is None) == bool(cache), "a copy only for a shared cache"
    recorded = set(recorded_lines(db, batch.id))
    restarted_at = time.time()
    gw.start()
    done = wait_status(api, batch.id, timeout=40)
    assert done.status == "completed"

    requests = slow_mock.requests()
    resent = sorted(line_of[r["text"]] for r in requests if r["t"] >= restarted_at and line_of[r["text"]] in recorded)
    assert not resent, f"lines recorded before the kill were sent again after the restart (I3): {resent[:20]}"
    assert {line_of[r["text"]] for r in requests} == set(range(1, 241)), "every line was sent"
    output, errors = outputs(api, done)
    assert errors == []
    assert [line["custom_id"] for line in output] == [c for c, _, _ in lines]  # I1, in input order
    assert_counts(done, 240)  # I2
    assert dispatch_copies(gw) == []


@CACHES
def test_cancelling_a_grouped_batch_writes_every_line_once(make_gateway, connect, slow_mock, cache):
    upstream = {"name": "mock", "base_url": slow_mock.base_url, **cache}
    gw = make_gateway(config(upstream), env={"BATCHGATE_SHARD_LINES": "20"})
    api = connect(gw)
    lines = shuffled(200)
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=4)
    wait_until(lambda: api.batches.retrieve(batch.id).request_counts.completed >= 12, timeout=20, what="12 answers")
    api.batches.cancel(batch.id)
    done = wait_status(api, batch.id)
    assert done.status == "cancelled"
    output, errors = outputs(api, done)
    assert_partition(output, errors, (c for c, _, _ in lines))  # I1
    assert_counts(done, 200)  # I2
    assert output and errors, "the cancel should land mid-run"
    order = {c: n for n, (c, _, _) in enumerate(lines)}
    for kept in (output, errors):
        assert [order[line["custom_id"]] for line in kept] == sorted(order[line["custom_id"]] for line in kept)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert dispatch_copies(gw) == []


@CACHES
def test_a_grouped_batch_expires_with_every_line_once(make_gateway, connect, slow_mock, cache):
    gw = make_gateway(
        config({"name": "mock", "base_url": slow_mock.base_url, **cache}),
        env={"BATCHGATE_SHARD_LINES": "20", "BATCHGATE_COMPLETION_WINDOW_SECONDS": "3"},
    )
    api = connect(gw)
    lines = shuffled(400)
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=2)
    done = wait_status(api, batch.id, timeout=30)
    assert done.status == "expired"
    output, errors = outputs(api, done)
    assert_partition(output, errors, (c for c, _, _ in lines))  # I1
    assert_counts(done, 400)  # I2
    assert output, "lines answered before the window ended are kept"
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}
    assert dispatch_copies(gw) == []


def test_results_of_a_running_planned_batch_come_in_input_order_without_gaps(make_gateway, connect, slow_mock):
    """Any shard of a planned batch may hold any line: a line not recorded yet ends the page until all have finished."""
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}), env={"BATCHGATE_SHARD_LINES": "20"})
    api = connect(gw)
    lines = shuffled(120)
    _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=4)
    wait_until(lambda: api.batches.retrieve(batch.id).request_counts.completed >= 20, timeout=20, what="20 answers")
    reply = http(gw, "GET", f"/v1/batches/{batch.id}/results?limit=200")
    assert reply.status == 200
    running = [json.loads(row)["line"] for row in reply.body.splitlines() if row.strip()]
    assert running == list(range(1, len(running) + 1)), "a line still to come was skipped"
    assert wait_status(api, batch.id).status == "completed"
    reply = http(gw, "GET", f"/v1/batches/{batch.id}/results?limit=200")
    assert [json.loads(row)["line"] for row in reply.body.splitlines() if row.strip()] == list(range(1, 121))


def test_the_plan_marks_a_batch_grouped_only_when_some_group_has_two_lines(make_gateway, connect, mock):
    gw = make_gateway(config({"name": "mock", "base_url": mock.base_url}))
    api = connect(gw)
    db = gw.data_dir / "batchgate.db"
    distinct = [grouped_line(f"d{n}", n, f"alone {n}") for n in range(6)]  # a system prompt each: no group
    one_group = [grouped_line(f"o{n}", 0, f"together {n}") for n in range(6)]  # already in one run: no copy
    for lines, grouped in ((distinct, 0), (one_group, 1)):
        _, batch = start_batch(api, lines)
        assert wait_status(api, batch.id).status == "completed"
        row = db_batch(db, batch.id)
        assert (row["grouped"], row["dispatch_key"]) == (grouped, None)


def test_behind_a_cache_per_slot_a_group_waits_for_its_answer_while_other_groups_go(make_gateway, connect, tmp_path):
    """A llama.cpp server (prompt_cache_slots): no dispatch copy; a group's next line goes only once its
    previous line is answered, and meanwhile the shard sends the other groups' lines."""
    mock = MockUpstream(tmp_path, latency=0.05)
    try:
        gw = make_gateway(config({"name": "mock", "base_url": mock.base_url, "prompt_cache_slots": 1}))
        api = connect(gw)
        lines = shuffled(32)
        sleeper = next(n for n, (_, group, _) in enumerate(lines) if group == 0)
        custom_id, _, text = lines[sleeper]
        lines[sleeper] = (custom_id, 0, text + " [sleep:1]")
        _, batch = start_batch(api, [grouped_line(c, g, t) for c, g, t in lines], max_concurrency=8)
        done = wait_status(api, batch.id)
        requests = mock.requests()
    finally:
        stop_mock(mock)
    assert done.status == "completed"
    row = db_batch(gw.data_dir / "batchgate.db", batch.id)
    assert (row["grouped"], row["dispatch_key"]) == (1, None)
    output, errors = outputs(api, done)
    assert errors == [] and [line["custom_id"] for line in output] == [c for c, _, _ in lines], "input order"
    group_of = {t: g for _, g, t in lines}
    arrivals: dict[int, list[float]] = {}
    for request in requests:
        arrivals.setdefault(group_of[request["text"]], []).append(request["t"])
    for group, times in arrivals.items():
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= 0.05, f"group {group}: a line went before the one ahead of it was answered"
    woke = arrivals[0][0] + 1
    assert arrivals[0][1] >= woke, "the sleeper's sibling waited for its answer"
    assert any(arrivals[0][0] < t < woke for g in (1, 2, 3) for t in arrivals[g]), "other groups went meanwhile"
