"""Webhooks end to end: real gateways, a real receiver process, signatures checked with `standardwebhooks`.

Every terminal batch sends one event to each endpoint of its scope; a failing or absent receiver
gets it later (retries, a kill -9 between them); private URLs are refused; endpoints are scoped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.contract.conftest import assert_error_reply, http
from tests.support.lifecycle import (
    chat_line,
    client,
    config,
    serve_log,
    start_batch,
    start_worker,
    stop_process,
    wait_status,
    wait_until,
)
from tests.support.servers import free_port
from tests.support.webhooks import Receiver, verified

STACKS = ("local", "postgresql+s3")
ALLOW_PRIVATE = "webhooks_allow_private = true\n"  # the receiver listens on loopback
FAST_RETRIES = {
    "BATCHGATE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "BATCHGATE_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
    "BATCHGATE_WEBHOOK_TIMEOUT_SECONDS": "5",
    "BATCHGATE_LOG_LEVEL": "info",
}
EVENT_OF = {
    "completed": "batch.completed",
    "failed": "batch.failed",
    "cancelled": "batch.cancelled",
    "expired": "batch.expired",
}


@pytest.fixture
def receivers(tmp_path):
    started: list[Receiver] = []

    def make(fail: int = 0, start: bool = True) -> Receiver:
        receiver = Receiver(tmp_path, fail=fail)
        started.append(receiver)
        return receiver.start() if start else receiver

    yield make
    for receiver in started:
        receiver.stop()


def gateway_with_webhooks(make_gateway, mock_upstream, env: dict[str, str] | None = None):
    return make_gateway(
        config({"name": "mock", "base_url": mock_upstream.base_url}, extra=ALLOW_PRIVATE),
        env={**FAST_RETRIES, **(env or {})},
    )


def add_endpoint(gw, url: str, obo: str | None = None, key: str | None = None, prefix: str = "/v1", **extra) -> dict:
    reply = http(gw, "POST", f"{prefix}/webhooks", obo=obo, key=key or gw.key, body={"url": url, **extra})
    assert reply.status == 200, reply.body
    return reply.json


def completed_batch(api, name: str) -> str:
    _, batch = start_batch(api, [chat_line(name, f"hello {name}")])
    assert wait_status(api, batch.id).status == "completed"
    return batch.id


def events_received(receiver: Receiver, secret: str, count: int) -> list[dict]:
    """Wait for `count` accepted calls; every call's signature verified, the events in arrival order."""
    wait_until(lambda: len(receiver.accepted()) >= count, timeout=40, what=f"{count} webhook events")
    return [verified(call, secret) for call in receiver.accepted()]


def test_each_terminal_batch_sends_one_signed_event(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(
        make_gateway,
        mock_upstream,
        {"BATCHGATE_COMPLETION_WINDOW_SECONDS": "4", "BATCHGATE_CANCEL_GRACE_SECONDS": "0.5"},
    )
    receiver = receivers()
    endpoint = add_endpoint(gw, receiver.url)
    assert endpoint["object"] == "webhook_endpoint" and endpoint["secret"].startswith("whsec_")
    api = client(gw)

    _, completed = start_batch(api, [chat_line("a", "hi")])
    broken = api.files.create(file=("bad.jsonl", b"{broken\n"), purpose="batch")
    failed = api.batches.create(input_file_id=broken.id, endpoint="/v1/chat/completions", completion_window="24h")
    _, cancelled = start_batch(api, [chat_line("c", "[sleep:8] cancel me")])
    _, expired = start_batch(api, [chat_line("e", "[sleep:8] expire me")])
    wait_status(api, cancelled.id, ("in_progress",))
    api.batches.cancel(cancelled.id)
    statuses = {batch.id: wait_status(api, batch.id).status for batch in (completed, failed, cancelled, expired)}
    assert sorted(statuses.values()) == ["cancelled", "completed", "expired", "failed"]

    events = events_received(receiver, endpoint["secret"], 4)
    barrier = completed_batch(api, "last")  # sent after the four: any duplicate of theirs would come first
    events = events_received(receiver, endpoint["secret"], 5)
    assert len(events) == 5 and events[-1]["data"] == {"id": barrier}, events
    by_batch = {event["data"]["id"]: event for event in events[:4]}
    assert {batch_id: event["type"] for batch_id, event in by_batch.items()} == {
        batch_id: EVENT_OF[status] for batch_id, status in statuses.items()
    }
    for call, event in zip(receiver.calls(), events, strict=True):
        assert set(event) == {"id", "object", "type", "created_at", "data"}
        assert event["object"] == "event" and event["id"].startswith("evt_") and isinstance(event["created_at"], int)
        assert call["headers"]["webhook-id"] == event["id"]
        assert call["headers"]["webhook-signature"].startswith("v1,")
        assert call["path"] == "/hooks"
    assert len({event["id"] for event in events}) == 5


def test_a_receiver_failing_twice_gets_the_event_on_the_third_try(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream)
    receiver = receivers(fail=2)
    endpoint = add_endpoint(gw, receiver.url, events=["batch.completed"])
    batch_id = completed_batch(client(gw), "flaky")

    events_received(receiver, endpoint["secret"], 1)
    calls = receiver.calls()
    assert [call["status"] for call in calls] == [500, 500, 204]
    assert len({call["headers"]["webhook-id"] for call in calls}) == 1, "a retry is the same event"
    assert all(verified(call, endpoint["secret"])["data"] == {"id": batch_id} for call in calls)
    log = serve_log(gw)
    for attempt in (1, 2):
        assert f"attempt {attempt} failed (HTTP 500); retrying in" in log, log[-3000:]
    assert "delivered on attempt 3" in log


def test_events_survive_a_down_receiver_and_a_kill_9(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream)
    receiver = receivers(start=False)  # its port is chosen, nobody listens there yet
    endpoint = add_endpoint(gw, receiver.url)
    api = client(gw)
    batch_ids = [completed_batch(api, f"b{i}") for i in range(3)]
    wait_until(lambda: serve_log(gw).count("failed (ClientConnector") >= 6, what="two refused attempts per event")

    gw.kill()  # SIGKILL, mid-schedule
    receiver.start()
    gw.start()
    events_received(receiver, endpoint["secret"], 3)
    barrier = completed_batch(api, "after")
    events = events_received(receiver, endpoint["secret"], 4)
    assert [event["data"]["id"] for event in events][-1] == barrier
    assert sorted(event["data"]["id"] for event in events[:3]) == sorted(batch_ids)
    assert len(receiver.calls()) == 4, "every event exactly once"


def test_several_workers_send_each_event_once(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream, {"BATCHGATE_NO_WORKER": "1"})
    workers = [start_worker(gw, f"worker{n}.log") for n in range(3)]
    try:
        receiver = receivers()
        endpoint = add_endpoint(gw, receiver.url)
        api = client(gw)
        batch_ids = [start_batch(api, [chat_line(f"w{n}", f"hi {n}")])[1].id for n in range(12)]
        assert {wait_status(api, batch_id).status for batch_id in batch_ids} == {"completed"}
        events = events_received(receiver, endpoint["secret"], 12)
        barrier = completed_batch(api, "barrier")
        events = events_received(receiver, endpoint["secret"], 13)
    finally:
        for worker in workers:
            stop_process(worker)
    assert events[-1]["data"] == {"id": barrier}
    assert sorted(event["data"]["id"] for event in events[:12]) == sorted(batch_ids)
    assert len(receiver.calls()) == 13, "no event sent twice"
    logs = [(gw.folder / f"worker{n}.log").read_text() for n in range(3)]
    assert sum(log.count("delivered on attempt 1") for log in logs) == 13


def test_a_private_url_is_checked_again_when_sending(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream)
    receiver = receivers()
    add_endpoint(gw, receiver.url)
    gw.stop()
    gw.config_path.write_text(config({"name": "mock", "base_url": mock_upstream.base_url}))  # private: refused now
    gw.start()

    completed_batch(client(gw), "refused")
    refusal = "attempt 1 failed (The webhook URL's host 127.0.0.1 is 127.0.0.1, a loopback"
    wait_until(lambda: refusal in serve_log(gw), what="the refused attempt in the log")
    assert receiver.calls() == []


@pytest.mark.parametrize("prefix", ["/api/v1/llm", "/v1"])
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_urls_are_refused_with_a_clear_400(module_gateway, prefix, url):
    gateway = module_gateway
    error = assert_error_reply(http(gateway, "POST", f"{prefix}/webhooks", body={"url": url}), 400)
    assert error["code"] == "webhook_url_not_allowed" and error["param"] == "url"
    assert "webhooks_allow_private = true" in error["message"]
    assert http(gateway, "GET", f"{prefix}/webhooks").json["data"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x"}, "invalid_url"),
        ({"url": "http://"}, "invalid_url"),
        ({"url": "https://example.com/x", "events": ["batch.done"]}, "invalid_event_type"),
        ({"url": "https://example.com/x", "events": []}, "invalid_request"),
        ({"url": "https://example.com/x", "colour": "red"}, "unknown_parameter"),
        ({}, "invalid_request"),
    ],
)
def test_bad_endpoint_requests_are_400(module_gateway, body, code):
    gateway = module_gateway
    assert assert_error_reply(http(gateway, "POST", "/v1/webhooks", body=body), 400)["code"] == code


def test_endpoints_and_their_events_belong_to_one_scope(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream)
    other_key = gw.create_key("other")
    receiver = receivers()
    endpoint = add_endpoint(gw, receiver.url, obo="alice", prefix="/api/v1/llm")
    assert "secret" not in http(gw, "GET", "/v1/webhooks", obo="alice").json["data"][0]
    assert [e["id"] for e in http(gw, "GET", "/v1/webhooks", obo="alice").json["data"]] == [endpoint["id"]]
    for obo, key in (("bob", gw.key), (None, gw.key), ("alice", other_key)):
        assert http(gw, "GET", "/v1/webhooks", obo=obo, key=key).json["data"] == []
        error = assert_error_reply(http(gw, "DELETE", f"/v1/webhooks/{endpoint['id']}", obo=obo, key=key), 404)
        assert endpoint["id"] in error["message"]

    # A batch of another scope raises no event here; alice's own batch does.
    api = client(gw)
    bob = completed_batch(api.with_options(default_headers={"X-On-Behalf-Of": "bob"}), "bob")
    alice = completed_batch(api.with_options(default_headers={"X-On-Behalf-Of": "alice"}), "alice")
    events = events_received(receiver, endpoint["secret"], 1)
    assert [event["data"]["id"] for event in events] == [alice] and bob != alice

    deleted = http(gw, "DELETE", f"/api/v1/llm/webhooks/{endpoint['id']}", obo="alice")
    assert deleted.json == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    assert http(gw, "GET", "/v1/webhooks", obo="alice").json["data"] == []


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "batchgate", "webhooks", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_adds_lists_and_removes_endpoints(make_gateway, mock_upstream, receivers):
    gw = gateway_with_webhooks(make_gateway, mock_upstream)
    receiver = receivers()
    env = {"BATCHGATE_URL": gw.url, "BATCHGATE_API_KEY": gw.key, "BATCHGATE_ON_BEHALF_OF": "team"}

    added = run_cli("add", receiver.url, "--events", "batch.completed,batch.failed", env=env)
    assert added.returncode == 0, added.stderr
    lines = added.stdout.strip().splitlines()
    endpoint_id, secret = lines[0], lines[-1]
    assert endpoint_id.startswith("we_") and secret.startswith("whsec_")

    listed = run_cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert '"batch.completed"' in listed.stdout and endpoint_id in listed.stdout and secret not in listed.stdout
    # The key flags win over the environment: another X-On-Behalf-Of sees nothing.
    assert endpoint_id not in run_cli("list", "--on-behalf-of", "elsewhere", env=env).stdout

    batch_id = completed_batch(client(gw).with_options(default_headers={"X-On-Behalf-Of": "team"}), "cli")
    assert [e["data"]["id"] for e in events_received(receiver, secret, 1)] == [batch_id]

    removed = run_cli("remove", endpoint_id, env=env)
    assert removed.returncode == 0 and '"deleted": true' in removed.stdout, removed.stderr
    assert endpoint_id not in run_cli("list", env=env).stdout

    again = run_cli("remove", endpoint_id, env=env)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and endpoint_id in again.stderr
    bad_event = run_cli("add", receiver.url, "--events", "batch.done", env=env)
    assert bad_event.returncode == 1 and "batch.done" in bad_event.stderr
    no_key = run_cli("list", env={"BATCHGATE_URL": gw.url})
    assert no_key.returncode == 2 and "API key" in no_key.stderr
    unreachable = run_cli("list", "--server-url", f"http://127.0.0.1:{free_port()}", env=env)
    assert unreachable.returncode == 3 and unreachable.stderr.count("\n") == 1
    assert run_cli("add", env=env).returncode == 2  # URL missing: usage


def test_private_url_refused_by_the_cli(module_gateway):
    gateway = module_gateway
    result = run_cli(
        "add", "http://127.0.0.1:9/x", env={"BATCHGATE_URL": gateway.url, "BATCHGATE_API_KEY": gateway.key}
    )
    assert result.returncode == 1 and "webhooks_allow_private" in result.stderr
