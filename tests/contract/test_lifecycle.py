"""Batch lifecycle over HTTP with the openai SDK: cancel, expiry, retries, upstream failures, progress.

Every test runs a real `batchgate serve` in front of a real mock upstream process, and checks
the wire objects and both result files against the design's invariants (I1, I2, I5).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from tests.support.lifecycle import (
    TERMINAL,
    assert_counts,
    assert_partition,
    chat_line,
    client,
    closed_port_url,
    config,
    outputs,
    start_batch,
    start_worker,
    stop_mock,
    stop_process,
    texts_of,
    wait_status,
    wait_until,
)
from tests.support.servers import MockUpstream

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3


@pytest.fixture
def make_mock(tmp_path):
    mocks: list[MockUpstream] = []

    def make(latency: float = 0.0) -> MockUpstream:
        folder = tmp_path / f"mock{len(mocks)}"
        folder.mkdir()
        mocks.append(MockUpstream(folder, latency=latency))
        return mocks[-1]

    yield make
    for mock in mocks:
        stop_mock(mock)


@pytest.fixture
def make_worker():
    """make_worker(gateway) → a `batchgate worker` process on the gateway's data dir and config."""
    processes: list[subprocess.Popen] = []

    def make(gateway) -> subprocess.Popen:
        processes.append(start_worker(gateway))
        return processes[-1]

    yield make
    for process in processes:
        stop_process(process)


def mock_config(mock: MockUpstream, **table) -> str:
    return config({"name": "mock", "base_url": mock.base_url, **table})


def answer_text(line: dict) -> str:
    return line["response"]["body"]["choices"][0]["message"]["content"]


def assert_answers_match(output: list[dict], texts: dict[str, str]) -> None:
    """Each output line carries the answer to its own request."""
    for line in output:
        assert answer_text(line) == "echo: " + texts[line["custom_id"]], line


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_mid_run_keeps_finished_lines_and_cancels_the_rest(make_gateway, make_mock):
    mock = make_mock(latency=0.3)
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_CANCEL_GRACE_SECONDS": "5"})
    api = client(gw)
    texts = {f"c{i}": f"cancel me {i}" for i in range(30)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=2)

    wait_until(
        lambda: api.batches.retrieve(batch.id).request_counts.completed >= 4, timeout=20, what="4 lines answered"
    )
    cancelling = api.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None and cancelling.cancelled_at is None

    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "cancelled"
    assert done.cancelling_at == cancelling.cancelling_at
    assert done.cancelled_at is not None and done.cancelled_at >= done.cancelling_at
    assert done.completed_at is None and done.expired_at is None

    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert_answers_match(output, texts)
    assert 4 <= len(output) < 30 and errors, "the cancel must have cut the run short"
    for line in errors:
        assert line["response"] is None and line["error"]["code"] == "batch_cancelled", line
    assert_counts(done, 30)
    assert done.request_counts.completed == len(output) and done.request_counts.failed == len(errors)
    # Lines in flight at the cancel finish within the grace period: whatever was sent got its answer
    # into the output file, and no cancelled line was ever sent.
    sent = Counter(texts_of(mock.requests()))
    assert set(sent) == {texts[line["custom_id"]] for line in output}
    assert all(n == 1 for n in sent.values()), sent


def test_cancel_grace_bounds_the_wait_for_slow_lines(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_CANCEL_GRACE_SECONDS": "0.5"})
    api = client(gw)
    texts = {f"s{i}": f"stuck [sleep:10] {i}" for i in range(4)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=4)
    wait_until(lambda: len(mock.requests()) == 4, timeout=10, what="all 4 lines in flight")

    started = time.monotonic()
    assert api.batches.cancel(batch.id).status == "cancelling"
    done = wait_status(api, batch.id, timeout=15)
    assert done.status == "cancelled"
    assert time.monotonic() - started < 8, "a 0.5 s grace period must not wait for 10 s answers"
    output, errors = outputs(api, done)
    assert output == [] and done.output_file_id is None
    assert_partition(output, errors, texts)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert all(line["response"] is None for line in errors)
    assert_counts(done, 4)
    assert done.request_counts.failed == 4


def test_cancel_while_validating_then_cancel_again_is_idempotent(make_gateway, make_mock, make_worker):
    """An API-only gateway leaves the batch in validating; a worker started later finishes the cancel."""
    mock = make_mock()
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_NO_WORKER": "1"})
    api = client(gw)
    texts = {f"v{i}": f"never sent {i}" for i in range(3)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()])
    time.sleep(0.3)
    assert api.batches.retrieve(batch.id).status == "validating"

    first = api.batches.cancel(batch.id)
    assert first.status == "cancelling" and first.cancelling_at is not None
    again = api.batches.cancel(batch.id)  # cancelling → still cancelling, 200
    assert again.status == "cancelling" and again.cancelling_at == first.cancelling_at

    make_worker(gw)
    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.in_progress_at is None
    output, errors = outputs(api, done)
    assert output == [] and done.output_file_id is None
    assert_partition(output, errors, texts)
    assert all(l["error"]["code"] == "batch_cancelled" and l["response"] is None for l in errors)
    assert_counts(done, 3)
    assert mock.requests() == [], "a batch cancelled while validating sends nothing upstream"

    # Cancelling a cancelled batch answers 200 with the batch unchanged.
    repeat = api.batches.cancel(batch.id)
    assert repeat.status == "cancelled"
    assert (repeat.cancelling_at, repeat.cancelled_at) == (done.cancelling_at, done.cancelled_at)
    assert repeat.error_file_id == done.error_file_id


def test_cancel_of_a_completed_batch_is_a_conflict(gateway):
    api = client(gateway)
    _, batch = start_batch(api, [chat_line("a", "hi")])
    done = wait_status(api, batch.id)
    assert done.status == "completed"
    with pytest.raises(openai.ConflictError) as caught:
        api.batches.cancel(batch.id)
    assert caught.value.body["code"] == "batch_not_cancellable"
    assert api.batches.retrieve(batch.id).status == "completed"


# --- expiry ---------------------------------------------------------------------------------------


def test_batch_expires_at_the_end_of_its_window(make_gateway, make_mock):
    mock = make_mock(latency=0.5)
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_COMPLETION_WINDOW_SECONDS": "3"})
    api = client(gw)
    texts = {f"e{i}": f"expire me {i}" for i in range(20)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=2)
    assert batch.expires_at == batch.created_at + 3

    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "expired"
    assert done.expires_at == done.created_at + 3
    assert done.expired_at is not None and done.expired_at >= done.expires_at
    assert done.completed_at is None and done.cancelled_at is None

    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert_answers_match(output, texts)
    assert 0 < len(output) < 20, f"{len(output)} answered: the window should end mid-run"
    for line in errors:
        assert line["response"] is None and line["error"]["code"] == "batch_expired", line
    assert_counts(done, 20)
    assert done.request_counts.completed == len(output) and done.request_counts.failed == len(errors)


# --- retries and upstream failures ----------------------------------------------------------------


def test_retries_follow_the_status_of_each_answer(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_MAX_ATTEMPTS": "3"})
    api = client(gw)
    texts = {
        "flaky": "flaky [flaky:2]",
        "limited": "limited [429:1]",
        "bad": "bad [status:400]",
        "down": "down [status:503]",
        "plain": "plain",
    }
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()])
    done = wait_status(api, batch.id, timeout=30)
    assert done.status == "completed"

    attempts: dict[str, list[int]] = {}
    for request in mock.requests():
        attempts.setdefault(request["text"], []).append(request["status"])
    assert attempts[texts["flaky"]] == [500, 500, 200]
    assert attempts[texts["limited"]] == [429, 200]
    assert attempts[texts["bad"]] == [400], "a 400 is final: no retry"
    assert attempts[texts["down"]] == [503, 503, 503], "a 503 is retried up to BATCHGATE_MAX_ATTEMPTS"
    assert attempts[texts["plain"]] == [200]

    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert sorted(l["custom_id"] for l in output) == ["flaky", "limited", "plain"]
    assert_answers_match(output, texts)
    by_id = {line["custom_id"]: line for line in errors}
    bad = by_id["bad"]
    assert bad["response"]["status_code"] == 400
    assert bad["response"]["body"] == {"error": {"message": "mock says 400", "type": "mock_error", "code": "mock_400"}}
    assert bad["error"]["code"] == "mock_400"
    down = by_id["down"]
    assert down["response"]["status_code"] == 503
    assert down["response"]["body"]["error"]["code"] == "mock_503"
    assert_counts(done, 5)
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 2)


def test_a_2xx_that_is_not_json_is_retried_then_reported(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(mock_config(mock), env={"BATCHGATE_MAX_ATTEMPTS": "3"})
    api = client(gw)
    texts = {"glitch": "glitch [garbage:1]", "broken": "broken [garbage:9]"}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()])
    done = wait_status(api, batch.id, timeout=30)
    assert done.status == "completed"
    attempts = [r["text"] for r in mock.requests()]
    assert attempts.count(texts["glitch"]) == 2 and attempts.count(texts["broken"]) == 3

    output, errors = outputs(api, done)
    assert_partition(output, errors, texts)
    assert [l["custom_id"] for l in output] == ["glitch"]
    assert_answers_match(output, texts)
    [broken] = errors
    assert broken["error"]["code"] == "invalid_upstream_response"
    assert broken["response"]["status_code"] == 200
    assert "upstream proxy error" in broken["response"]["body"]["error"]["message"]
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)


def test_unreachable_upstream_and_timeouts_fail_only_their_lines(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(
        config(
            {"name": "gone", "base_url": closed_port_url(), "models": ["gone-*"]},
            {"name": "mock", "base_url": mock.base_url, "models": ["*"]},
        ),
        env={"BATCHGATE_REQUEST_TIMEOUT_SECONDS": "0.5", "BATCHGATE_MAX_ATTEMPTS": "2"},
    )
    api = client(gw)
    lines = [
        chat_line("unreachable", "to nowhere", model="gone-1"),
        chat_line("slow", "too slow [sleep:3]"),
        chat_line("fine", "fine"),
    ]
    _, batch = start_batch(api, lines)
    started = time.monotonic()
    done = wait_status(api, batch.id, timeout=30)
    assert done.status == "completed"
    assert time.monotonic() - started < 6, "two 0.5 s attempts must not wait for a 3 s answer"

    output, errors = outputs(api, done)
    assert_partition(output, errors, ["unreachable", "slow", "fine"])
    assert [l["custom_id"] for l in output] == ["fine"]
    by_id = {line["custom_id"]: line for line in errors}
    assert by_id["unreachable"]["response"] is None
    assert by_id["unreachable"]["error"]["code"] == "upstream_unreachable"
    assert by_id["slow"]["response"] is None
    assert by_id["slow"]["error"]["code"] == "timeout"
    assert Counter(texts_of(mock.requests()))["too slow [sleep:3]"] == 2, "a timeout is retried"
    assert "to nowhere" not in texts_of(mock.requests())
    assert_counts(done, 3)
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)


def test_a_model_no_upstream_serves_fails_only_its_line(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(mock_config(mock, models=["only-this"]))
    api = client(gw)
    lines = [
        chat_line("ok1", "served 1", model="only-this"),
        chat_line("lost", "unserved", model="other"),
        chat_line("ok2", "served 2", model="only-this"),
    ]
    _, batch = start_batch(api, lines)
    done = wait_status(api, batch.id)
    assert done.status == "completed"
    output, errors = outputs(api, done)
    assert_partition(output, errors, ["ok1", "lost", "ok2"])
    assert sorted(l["custom_id"] for l in output) == ["ok1", "ok2"]
    assert [l["custom_id"] for l in errors] == ["lost"]
    assert errors[0]["response"] is None and errors[0]["error"]["code"] == "model_not_found"
    assert sorted(texts_of(mock.requests())) == ["served 1", "served 2"]
    assert_counts(done, 3)


# --- progress and forwarding ----------------------------------------------------------------------


def test_request_counts_move_while_the_batch_runs(make_gateway, make_mock):
    mock = make_mock(latency=0.2)
    gw = make_gateway(mock_config(mock))
    api = client(gw)
    texts = {f"p{i}": f"progress {i}" for i in range(20)}
    _, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=2)

    seen: list[tuple[str, int, int, int]] = []
    deadline = time.monotonic() + 30
    while (current := api.batches.retrieve(batch.id)).status not in TERMINAL:
        assert time.monotonic() < deadline, "batch did not finish in 30 s"
        counts = current.request_counts
        seen.append((current.status, counts.total, counts.completed, counts.failed))
        time.sleep(0.05)
    assert current.status == "completed"
    assert_counts(current, 20)
    running = [s for s in seen if s[0] == "in_progress"]
    assert any(0 < completed < total for _, total, completed, _ in running), seen
    assert all(total == 20 for _, total, _, _ in running), "total is known once validated"
    completed_series = [completed for _, _, completed, _ in seen]
    assert completed_series == sorted(completed_series), "completed never goes backwards"


def test_upstream_api_key_is_forwarded(make_gateway, make_mock):
    mock = make_mock()
    gw = make_gateway(mock_config(mock, api_key="sk-up"))
    api = client(gw)
    _, batch = start_batch(api, [chat_line("a", "key a"), chat_line("b", "key b")])
    done = wait_status(api, batch.id)
    assert done.status == "completed"
    requests = mock.requests()
    assert sorted(texts_of(requests)) == ["key a", "key b"]
    assert all(r["auth"] == "Bearer sk-up" for r in requests), requests
    assert all(gw.key not in (r["auth"] or "") for r in requests), "the client's own key must not leak upstream"


# --- pacing: Retry-After, concurrency caps, the sliding window ------------------------------------


class RecordingUpstream:
    """An OpenAI-compatible upstream inside the test process that records when each request was in flight.

    A text containing "[retry-after:S]" is answered 429 with `Retry-After: S` on its first attempt.
    """

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.log: list[tuple[str, float, int]] = []  # (text, received at, status)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                with owner.lock:
                    seen = sum(1 for t, _, _ in owner.log if t == text)
                    retry = re.search(r"\[retry-after:([0-9.]+)\]", text)
                    status = 429 if retry and seen == 0 else 200
                    owner.log.append((text, time.time(), status))
                    owner.inflight += 1
                    owner.max_inflight = max(owner.max_inflight, owner.inflight)
                time.sleep(owner.latency)
                # Out of flight before the answer leaves: the client may send its next request the
                # moment it reads this one, and that must not count as overlapping with it.
                with owner.lock:
                    owner.inflight -= 1
                if status == 429:
                    payload = {"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limited"}}
                else:
                    payload = {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "echo: " + text},
                            }
                        ],
                    }
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status == 429:
                    self.send_header("Retry-After", retry.group(1))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording():
    upstreams: list[RecordingUpstream] = []

    def make(latency: float = 0.0) -> RecordingUpstream:
        upstreams.append(RecordingUpstream(latency))
        return upstreams[-1]

    yield make
    for upstream in upstreams:
        upstream.stop()


def test_retry_after_is_a_floor_for_the_next_attempt(make_gateway, recording):
    upstream = recording()
    gw = make_gateway(config({"name": "rec", "base_url": upstream.base_url}))
    api = client(gw)
    _, batch = start_batch(api, [chat_line("wait", "wait for me [retry-after:1.5]"), chat_line("free", "free")])
    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "completed" and done.request_counts.completed == 2
    attempts = [(t, status) for text, t, status in upstream.log if text == "wait for me [retry-after:1.5]"]
    assert [status for _, status in attempts] == [429, 200]
    gap = attempts[1][0] - attempts[0][0]
    assert gap >= 1.45, f"came back after {gap:.2f}s although the upstream asked for 1.5s"
    assert gap < 5


def test_a_batch_never_has_more_than_max_concurrency_lines_in_flight(make_gateway, recording):
    upstream = recording(latency=0.15)
    gw = make_gateway(config({"name": "rec", "base_url": upstream.base_url}))
    api = client(gw)
    _, batch = start_batch(api, [chat_line(f"c{i}", f"conc {i}") for i in range(15)], max_concurrency=3)
    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "completed" and done.request_counts.completed == 15
    assert upstream.max_inflight == 3, "the window should fill up to, and never past, max_concurrency"


def test_an_upstream_max_concurrency_caps_requests_across_the_batch(make_gateway, recording):
    upstream = recording(latency=0.15)
    gw = make_gateway(config({"name": "rec", "base_url": upstream.base_url, "max_concurrency": 2}))
    api = client(gw)
    _, batch = start_batch(api, [chat_line(f"u{i}", f"capped {i}") for i in range(10)], max_concurrency=8)
    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "completed" and done.request_counts.completed == 10
    assert upstream.max_inflight == 2


def test_one_slow_line_does_not_stall_the_others(make_gateway, make_mock):
    mock = make_mock(latency=0.05)
    gw = make_gateway(mock_config(mock))
    api = client(gw)
    lines = [chat_line("slow", "slow [sleep:3]")] + [chat_line(f"f{i}", f"fast {i}") for i in range(12)]
    _, batch = start_batch(api, lines, max_concurrency=2)
    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "completed" and done.request_counts.completed == 13
    received = {r["text"]: r["t"] for r in mock.requests()}
    slow_answered = received["slow [sleep:3]"] + 3.05
    late = [text for text, t in received.items() if text.startswith("fast") and t > slow_answered - 1.5]
    assert not late, f"fast lines waited for the slow one (a chunked gather, not a sliding window): {late}"
