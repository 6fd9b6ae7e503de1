"""GET /metrics and JSON logs on real processes: `batchgate serve`, `batchgate worker --metrics-port`, a mock upstream.

The exposition is parsed with prometheus_client's own parser, scraped before, during and after a real
batch, and the counters are checked against what the batch's lines did.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import batchgate, client_env
from tests.support.lifecycle import (
    chat_line,
    client,
    config,
    start_batch,
    start_worker,
    stop_mock,
    stop_process,
    wait_status,
    wait_until,
)
from tests.support.servers import MockUpstream, free_port, wait_for_port

CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset], float]


def scrape(base_url: str) -> Samples:
    """Every sample of GET /metrics (sent without a key), by (name, labels)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def finished(samples: Samples, outcome: str) -> float:
    return value(samples, "batchgate_lines_finished_total", endpoint=CHAT, outcome=outcome)


def mock_config(mock) -> str:
    return config({"name": "mock", "base_url": mock.base_url})


@pytest.fixture
def held_mock(tmp_path):
    """A mock upstream that may be holding a request when the test ends."""
    mock = MockUpstream(tmp_path)
    yield mock
    stop_mock(mock)


def test_metrics_move_with_a_real_batch_by_the_lines_it_has(make_gateway, held_mock):
    gateway = make_gateway(mock_config(held_mock), env={"BATCHGATE_CANCEL_GRACE_SECONDS": "0.2"})
    api = client(gateway)
    before = scrape(gateway.url)
    assert finished(before, "succeeded") == finished(before, "failed") == 0
    assert value(before, "batchgate_uploads_total") == 0

    # 30 answered at once, 3 after one 500 each, 5 refused with a 400, and one held until the batch is cancelled
    lines = (
        [chat_line(f"ok-{i}", f"hello {i}") for i in range(30)]
        + [chat_line(f"flaky-{i}", f"[flaky:1] again {i}") for i in range(3)]
        + [chat_line(f"bad-{i}", f"[status:400] no {i}") for i in range(5)]
        + [chat_line("held", "[sleep:120] held")]
    )
    file, batch = start_batch(api, lines)

    during = wait_until(
        lambda: (samples := scrape(gateway.url)) and finished(samples, "succeeded") == 33 and samples,
        what="every line but the held one finished",
    )
    assert finished(during, "failed") == 5
    assert value(during, "batchgate_upstream_in_flight", upstream="mock") == 1  # the held line
    assert value(during, "batchgate_upstream_queued", upstream="mock") == 0
    assert value(during, "batchgate_upstream_concurrency_limit", upstream="mock") >= 1
    assert value(during, "batchgate_batches", status="in_progress") == 1
    # Every attempt answered so far: 30 + 5 once, the 3 flaky ones twice.
    assert value(during, "batchgate_upstream_request_duration_seconds_count", upstream="mock") == 41
    assert value(during, "batchgate_upstream_retries_total", upstream="mock", reason="500") == 3
    assert value(during, "batchgate_uploads_total") == 1
    assert value(during, "batchgate_upload_bytes_total") == file.bytes
    assert value(during, "batchgate_result_commit_duration_seconds_count") >= 1

    api.batches.cancel(batch.id)
    assert wait_status(api, batch.id).status == "cancelled"
    after = scrape(gateway.url)
    outcomes = {"succeeded": 33, "failed": 5, "cancelled": 1}
    assert {outcome: finished(after, outcome) for outcome in outcomes} == outcomes
    assert sum(outcomes.values()) == len(lines)
    assert value(after, "batchgate_upstream_in_flight", upstream="mock") == 0
    assert value(after, "batchgate_batches", status="cancelled") == 1
    assert value(after, "batchgate_batches", status="in_progress") == 0


def test_a_worker_serves_its_own_metrics_on_its_metrics_port(make_gateway, mock_upstream):
    gateway = make_gateway(mock_config(mock_upstream), env={"BATCHGATE_NO_WORKER": "1"})
    port = free_port()
    worker = start_worker(gateway, args=("--metrics-port", str(port)))
    try:
        wait_for_port(port, worker)
        api = client(gateway)
        lines = [chat_line(f"ok-{i}", f"hi {i}") for i in range(8)] + [
            chat_line(f"bad-{i}", f"[status:400] no {i}") for i in range(2)
        ]
        _, batch = start_batch(api, lines)
        assert wait_status(api, batch.id).status == "completed"
        on_worker, on_api = scrape(f"http://127.0.0.1:{port}"), scrape(gateway.url)
    finally:
        stop_process(worker)
    # The worker did the lines; the API process took the upload; both read the batches from the database.
    assert (finished(on_worker, "succeeded"), finished(on_worker, "failed")) == (8, 2)
    assert (finished(on_api, "succeeded"), finished(on_api, "failed")) == (0, 0)
    assert value(on_api, "batchgate_uploads_total") == 1
    assert value(on_worker, "batchgate_uploads_total") == 0
    assert value(on_worker, "batchgate_batches", status="completed") == 1
    assert value(on_api, "batchgate_batches", status="completed") == 1


def test_metrics_off_is_a_404_and_undocumented(make_gateway):
    gateway = make_gateway(env={"BATCHGATE_METRICS_ENABLED": "false"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10)
    assert refused.value.code == 404
    assert json.loads(refused.value.read())["error"]["message"] == "No route for GET /metrics."
    with urllib.request.urlopen(f"{gateway.url}/openapi.json", timeout=10) as answer:
        assert "/metrics" not in json.loads(answer.read())["paths"]


def test_log_format_json_writes_one_object_per_line_with_the_line_fields(make_gateway, mock_upstream):
    gateway = make_gateway(mock_config(mock_upstream), args=("--log-format", "json", "--log-level", "debug"))
    api = client(gateway)
    lines = [chat_line("ok", "fine"), chat_line("flaky", "[flaky:1] once"), chat_line("bad", "[status:400] no")]
    _, batch = start_batch(api, lines)
    assert wait_status(api, batch.id).status == "completed"
    gateway.stop()

    records = [json.loads(line) for line in (gateway.folder / "serve.log").read_text().splitlines()]
    assert records, "the server logged nothing"
    for record in records:
        assert {"ts", "level", "logger", "message"} <= record.keys(), record
    retried = [r for r in records if r["message"].startswith("attempt 1 failed (500)")]
    failed = [r for r in records if r["message"] == "line 3 failed: 400"]
    assert len(retried) == 1 and len(failed) == 1, records
    for record in retried + failed:
        assert record["upstream"] == "mock", record
        assert record["batch_id"] == batch.id and isinstance(record["shard"], int), record


def test_cached_input_tokens_are_counted_and_their_hit_rate_shown_by_the_batch_and_the_cli(make_gateway, mock_upstream):
    gateway = make_gateway(mock_config(mock_upstream))
    api = client(gateway)
    # Four prompt words each (the mock's tokens), two of them reported as served by its prefix cache
    lines = [chat_line(f"c{i}", f"[cached:2] shared {i} words") for i in range(10)] + [
        chat_line(f"n{i}", f"cold {i} x y") for i in range(5)
    ]
    _, batch = start_batch(api, lines)
    batch = wait_status(api, batch.id)
    assert batch.status == "completed"
    usage = api.batches.retrieve(batch.id).model_dump()["usage"]
    assert usage["input_tokens"] == 60 and usage["input_tokens_details"]["cached_tokens"] == 20

    after = scrape(gateway.url)
    assert value(after, "batchgate_input_tokens_total", model="m", upstream="mock") == 60
    assert value(after, "batchgate_cached_input_tokens_total", model="m", upstream="mock") == 20

    env = client_env(gateway)
    table = batchgate("batches", "get", batch.id, "--output", "table", env=env)
    assert table.returncode == 0, table.stderr
    assert "cache hit" in table.stdout and "33%" in table.stdout  # 20 of 60 input tokens
