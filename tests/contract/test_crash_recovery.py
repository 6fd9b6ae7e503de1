"""`kill -9` of the gateway mid-batch: the restarted gateway resumes the batch (I1, I2, I3).

The restarted process sees that the old one is gone and claims its leases at once; otherwise
(another worker frozen, not dead) a lease runs out after BATCHGATE_LEASE_SECONDS (2 s, the Gateway
default, unless a test says otherwise). Either way the batch carries on from the results in SQLite.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.contract.conftest import http, multipart
from tests.support.lifecycle import (
    CHAT,
    assert_counts,
    assert_partition,
    chat_line,
    client,
    closed_port_url,
    config,
    db_batch,
    freeze_outside_writes,
    jsonl,
    outputs,
    recorded_lines,
    shard_owners,
    start_batch,
    start_worker,
    stop_mock,
    stop_process,
    texts_of,
    wait_status,
    wait_until,
)
from tests.support.servers import MockUpstream


@pytest.fixture
def slow_mock(tmp_path):
    mock = MockUpstream(tmp_path, latency=0.1)
    yield mock
    stop_mock(mock)


def upload_unchecked(gw, data: bytes) -> str:
    """The file part before the purpose: the upload leaves the lines alone, so its batch validates them itself."""
    body, content_type = multipart([("file", "in.jsonl", data, "application/jsonl"), ("purpose", None, b"batch", None)])
    reply = http(gw, "POST", "/v1/files", body=body, content_type=content_type)
    assert reply.status == 200, reply.body
    return reply.json["id"]


def kill_now(gw, api, batch_id: str, at_least: int) -> float:
    """Kill -9 the gateway once `at_least` lines are answered; return the time of the kill."""
    wait_until(
        lambda: api.batches.retrieve(batch_id).request_counts.completed >= at_least,
        timeout=30,
        interval=0.02,
        what=f"{at_least} lines answered",
    )
    gw.kill()
    return time.time()


def test_kill_9_twice_mid_run_resumes_without_resending_recorded_lines(make_gateway, slow_mock):
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}))
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    texts = {f"k{i:03d}": f"crash line {i}" for i in range(300)}
    line_of = {text: n for n, text in enumerate(texts.values(), 1)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=8)

    kills = []
    for threshold in (60, 180):
        killed_at = kill_now(gw, api, batch.id, threshold)
        recorded = recorded_lines(db, batch.id)
        row = db_batch(db, batch.id)
        assert row["status"] == "in_progress", "the kill should land mid-run"
        # Counts and result rows are written in one transaction: a crash never splits them.
        assert row["completed"] == sum(recorded.values()) and row["failed"] == len(recorded) - row["completed"]
        assert len(recorded) >= threshold
        assert len(recorded) < 300
        kills.append((killed_at, set(recorded)))
        time.sleep(0.05)
        restarted_at = time.time()
        gw.start()
        kills[-1] += (restarted_at,)

    done = wait_status(api, batch.id, timeout=40)
    assert done.status == "completed"

    requests = slow_mock.requests()
    for _killed_at, recorded, restarted_at in kills:
        resent = sorted(
            line_of[r["text"]] for r in requests if r["t"] >= restarted_at and line_of[r["text"]] in recorded
        )
        assert not resent, f"lines recorded before the kill were sent again after the restart (I3): {resent[:20]}"
    # Resumed, not restarted: the lines answered before the first kill were each sent once.
    first_recorded = kills[0][1]
    sends = {}
    for r in requests:
        sends[line_of[r["text"]]] = sends.get(line_of[r["text"]], 0) + 1
    assert all(sends[line] == 1 for line in first_recorded)
    assert set(sends) == set(range(1, 301)), "every line was sent at least once"

    output, errors = outputs(api, done)
    assert errors == [] and done.error_file_id is None
    assert_partition(output, errors, texts)  # I1
    for line in output:
        assert line["response"]["body"]["choices"][0]["message"]["content"] == "echo: " + texts[line["custom_id"]]
    assert_counts(done, 300)  # I2
    assert done.request_counts.completed == 300 and done.request_counts.failed == 0


def test_kill_9_during_validating_and_during_finalizing_loses_no_batch(make_gateway):
    """Lines for a model no upstream serves fail at once without HTTP, so a big batch runs fast."""
    gw = make_gateway(config({"name": "only", "base_url": closed_port_url(), "models": ["only-this"]}))
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    n = 60_000
    file_id = upload_unchecked(gw, jsonl([chat_line(f"f{i}", "x", model="nobody") for i in range(n)]))
    batch = api.batches.create(
        input_file_id=file_id, endpoint=CHAT, completion_window="24h", extra_body={"max_concurrency": 1024}
    )

    # Validating a 60k-line file takes a good fraction of a second: kill inside it.
    assert api.batches.retrieve(batch.id).status == "validating"
    time.sleep(0.1)
    gw.kill()
    row = db_batch(db, batch.id)
    assert row["status"] == "validating", f"wanted a kill during validating, got {row['status']}"
    gw.start()

    wait_until(
        lambda: api.batches.retrieve(batch.id).status in ("finalizing", "completed"),
        timeout=30,
        interval=0.01,
        what="finalizing",
    )
    gw.kill()
    row = db_batch(db, batch.id)
    assert row["status"] == "finalizing", f"wanted a kill during finalizing, got {row['status']}"
    assert row["failed"] == n and row["total"] == n
    gw.start()

    done = wait_status(api, batch.id, timeout=30)
    assert done.status == "completed"
    assert done.in_progress_at is not None and done.finalizing_at is not None and done.completed_at is not None
    assert_counts(done, n)
    assert done.request_counts.failed == n
    output, errors = outputs(api, done)
    assert_partition(output, errors, (f"f{i}" for i in range(n)))
    assert {line["error"]["code"] for line in errors} == {"model_not_found"}
    # Only the finished batch's one error file is visible.
    listed = [f for f in api.files.list(purpose="batch_output") if f.id in (done.output_file_id, done.error_file_id)]
    assert len(listed) == 1 and listed[0].id == done.error_file_id


def test_kill_9_while_cancelling_still_ends_cancelled(make_gateway, slow_mock):
    gw = make_gateway(
        config({"name": "mock", "base_url": slow_mock.base_url}), env={"BATCHGATE_CANCEL_GRACE_SECONDS": "10"}
    )
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    # Four quick lines, then slow ones that are still in flight when the cancel lands.
    texts = {f"q{i}": f"quick {i}" for i in range(4)} | {f"s{i}": f"slow {i} [sleep:3]" for i in range(8)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=4)
    wait_until(
        lambda: api.batches.retrieve(batch.id).request_counts.completed >= 4, timeout=15, what="quick lines answered"
    )
    wait_until(
        lambda: sum("sleep" in t for t in texts_of(slow_mock.requests())) == 4,
        timeout=10,
        what="4 slow lines in flight",
    )
    assert api.batches.cancel(batch.id).status == "cancelling"
    time.sleep(0.3)
    gw.kill()  # inside the 10 s grace period, with 4 slow lines still in flight
    assert db_batch(db, batch.id)["status"] == "cancelling"
    recorded = recorded_lines(db, batch.id)
    restarted_at = time.time()
    gw.start()

    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert [r for r in slow_mock.requests() if r["t"] >= restarted_at] == [], "a cancelled batch sends nothing"
    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert len(output) == len(recorded) == sum(recorded.values())
    assert sorted(l["custom_id"] for l in output) == [f"q{i}" for i in range(4)]
    assert all(l["error"]["code"] == "batch_cancelled" and l["response"] is None for l in errors)
    assert_counts(done, 12)


def test_a_window_that_ends_while_the_gateway_is_down_expires_the_batch_on_restart(make_gateway, slow_mock):
    gw = make_gateway(
        config({"name": "mock", "base_url": slow_mock.base_url}), env={"BATCHGATE_COMPLETION_WINDOW_SECONDS": "3"}
    )
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    texts = {f"w{i}": f"window {i}" for i in range(40)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=2)
    kill_now(gw, api, batch.id, 4)
    recorded = recorded_lines(db, batch.id)
    assert db_batch(db, batch.id)["status"] == "in_progress"
    wait_until(lambda: time.time() > batch.expires_at + 0.2, timeout=10, what="the window to end")
    restarted_at = time.time()
    gw.start()

    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "expired" and done.expired_at is not None
    assert [r for r in slow_mock.requests() if r["t"] >= restarted_at] == [], "an expired batch sends nothing"
    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert len(output) == sum(recorded.values()) >= 4, "answers recorded before the crash are kept"
    assert all(l["error"]["code"] == "batch_expired" and l["response"] is None for l in errors)
    assert_counts(done, 40)


def test_a_frozen_gateway_sends_no_recorded_line_after_another_worker_took_over(make_gateway, tmp_path):
    """SIGSTOP (a long GC pause, a suspended VM) outlives the 2 s lease; a scale-out worker takes over.

    Regression: on waking, the gateway used to fill its freed slots at once and re-sent the 8 lines
    after its in-flight ones, which the other worker had already recorded.
    """
    mock = MockUpstream(tmp_path, latency=0.2)
    gw = make_gateway(config({"name": "mock", "base_url": mock.base_url}))
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    texts = {f"z{i:03d}": f"frozen line {i}" for i in range(200)}
    line_of = {text: n for n, text in enumerate(texts.values(), 1)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=8)
    wait_until(
        lambda: api.batches.retrieve(batch.id).request_counts.completed >= 8,
        timeout=20,
        what="the gateway to run the batch",
    )
    worker = start_worker(gw)  # started second, so the gateway holds the lease
    try:
        wait_until(
            lambda: api.batches.retrieve(batch.id).request_counts.completed >= 40,
            timeout=20,
            what="40 lines answered by the gateway",
        )
        assert f":{gw.process.pid}:" in shard_owners(db, batch.id)
        freeze_outside_writes(gw.process, db)
        try:
            frozen_at = len(recorded_lines(db, batch.id))
            wait_until(
                lambda: len(recorded_lines(db, batch.id)) >= frozen_at + 60,
                timeout=20,
                what="the worker to take over and record 60 more lines",
            )
            assert f":{worker.pid}:" in shard_owners(db, batch.id)
            recorded = set(recorded_lines(db, batch.id))
            resumed_at = time.time()
        finally:
            gw.process.send_signal(signal.SIGCONT)
        done = wait_status(api, batch.id, timeout=30)
        assert done.status == "completed"
        output, errors = outputs(api, done)
        assert_partition(output, errors, texts)  # I1 holds: result rows are fenced
        assert_counts(done, 200)
        resent = sorted(
            line_of[r["text"]] for r in mock.requests() if r["t"] >= resumed_at and line_of[r["text"]] in recorded
        )
        assert not resent, f"lines already recorded were sent upstream again after the thaw (I3): {resent}"
    finally:
        stop_process(worker)
        stop_mock(mock)


def test_a_frozen_gateway_does_not_retry_a_line_another_worker_recorded(make_gateway, tmp_path):
    """The lease check guards new dispatches only; a retry already scheduled inside the upstream call is not."""
    mock = MockUpstream(tmp_path)
    # A 3 s retry base: the first retry waits 1.5–3 s, long enough to freeze the gateway inside it.
    gw = make_gateway(config({"name": "mock", "base_url": mock.base_url}), env={"BATCHGATE_RETRY_BASE_SECONDS": "3"})
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    flaky = "retry me [flaky:1]"
    texts = {"flaky": flaky} | {f"f{i}": f"fast {i}" for i in range(5)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()])
    worker = None
    try:
        wait_until(lambda: flaky in texts_of(mock.requests()), timeout=10, what="the first (500) attempt")
        freeze_outside_writes(gw.process, db)  # inside the 1.5–3 s backoff before the retry
        try:
            assert f":{gw.process.pid}:" in shard_owners(db, batch.id)
            worker = start_worker(gw)
            wait_until(
                lambda: db_batch(db, batch.id)["status"] == "completed",
                timeout=20,
                what="the worker to take over and finish the batch",
            )
            time.sleep(1.5)  # the frozen gateway's backoff (≤ 3 s) is now over
            resumed_at = time.time()
        finally:
            gw.process.send_signal(signal.SIGCONT)
        time.sleep(1.0)
        attempts = [(r["status"], r["t"] >= resumed_at) for r in mock.requests() if r["text"] == flaky]
        assert attempts[:2] == [(500, False), (200, False)], attempts  # the gateway's 500, the worker's 200
        done = api.batches.retrieve(batch.id)
        output, errors = outputs(api, done)
        assert_partition(output, errors, texts)
        assert_counts(done, 6)
        assert attempts == [(500, False), (200, False)], (
            f"the recorded line was sent again after the thaw (I3): {attempts}"
        )
    finally:
        if worker is not None:
            stop_process(worker)
        stop_mock(mock)


def test_a_restart_after_kill_9_resumes_at_once_without_waiting_out_the_lease(make_gateway, slow_mock):
    """With the default 20 s lease, the restarted gateway sees the old process is gone and carries on in seconds."""
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}), env={"BATCHGATE_LEASE_SECONDS": "20"})
    api = client(gw)
    db = gw.data_dir / "batchgate.db"
    texts = {f"r{i:03d}": f"resume line {i}" for i in range(240)}
    line_of = {text: n for n, text in enumerate(texts.values(), 1)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=12)
    kill_now(gw, api, batch.id, 40)
    assert db_batch(db, batch.id)["status"] == "in_progress"
    recorded = set(recorded_lines(db, batch.id))
    assert len(recorded) < 240 and shard_owners(db, batch.id), "the dead process should hold live leases"

    gw.start()  # returns once /healthz answers
    healthy_at = time.monotonic()
    wait_until(
        lambda: api.batches.retrieve(batch.id).request_counts.completed > len(recorded),
        timeout=25,
        interval=0.02,
        what="the counts to move after the restart",
    )
    resumed_after = time.monotonic() - healthy_at
    print(f"request_counts moved {resumed_after:.2f}s after the restarted gateway was healthy")
    assert resumed_after < 2.0, f"the batch waited {resumed_after:.1f}s: the dead process's lease was waited out"

    done = wait_status(api, batch.id, timeout=40)
    assert done.status == "completed"
    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)  # I1
    assert_counts(done, 240)  # I2
    sends = Counter(line_of[r["text"]] for r in slow_mock.requests())
    assert all(sends[line] == 1 for line in recorded), "a line recorded before the kill was sent again (I3)"
    assert set(sends) == set(range(1, 241))
