"""Scale-out on PostgreSQL and S3: one API process (`serve --no-worker`) and several `batchgate worker`s.

Workers are killed with SIGKILL at random moments and restarted; PostgreSQL itself is restarted
mid-batch. I1–I3 are checked against the mock upstream's own log of the requests it received,
and against snapshots of the results table taken while the batch ran.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter

import psycopg
import pytest

from tests.contract.conftest import http
from tests.support.lifecycle import (
    assert_counts,
    assert_partition,
    chat_line,
    client,
    config,
    outputs,
    start_batch,
    start_worker,
    stop_mock,
    stop_process,
    wait_status,
)
from tests.support.servers import MockUpstream
from tests.support.services import PostgresServer

SCALE_OUT_ENV = {
    "BATCHGATE_NO_WORKER": "1",
    "BATCHGATE_SHARD_LINES": "100",
    "BATCHGATE_WORKER_SHARDS": "3",
    "BATCHGATE_MAX_SHARDS_PER_BATCH": "6",
    "BATCHGATE_LEASE_SECONDS": "1.5",
    "BATCHGATE_POLL_INTERVAL_SECONDS": "0.1",
}


class Cluster:
    """An API process and `workers` worker processes sharing one PostgreSQL database and one S3 bucket."""

    def __init__(self, make_gateway, postgres: PostgresServer, s3_server, mock: MockUpstream, workers: int):
        self.database_url = postgres.database()
        env = {
            **SCALE_OUT_ENV,
            **s3_server.env,
            "BATCHGATE_DATABASE_URL": self.database_url,
            "BATCHGATE_STORAGE_URL": s3_server.bucket(),
        }
        self.api_gateway = make_gateway(config({"name": "mock", "base_url": mock.base_url}), env=env)
        self.api = client(self.api_gateway)
        self.workers = [self.start_worker(i) for i in range(workers)]

    def start_worker(self, index: int) -> subprocess.Popen:
        return start_worker(self.api_gateway, log_name=f"worker{index}.log")

    def recorded(self, batch_id: str) -> tuple[set[int], float]:
        """The lines whose result is recorded, and a moment by which all of them were."""
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            lines = {line for (line,) in conn.execute("SELECT line FROM results WHERE batch_id = %s", (batch_id,))}
        return lines, time.time()

    def shard_owners(self, batch_id: str) -> set[str]:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return {
                owner
                for (owner,) in conn.execute(
                    "SELECT lease_owner FROM shards WHERE batch_id = %s AND lease_owner IS NOT NULL", (batch_id,)
                )
            }

    def status(self, batch_id: str) -> str:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute("SELECT status FROM batches WHERE id = %s", (batch_id,)).fetchone()[0]

    def stop(self) -> None:
        for worker in self.workers:
            stop_process(worker)


def assert_never_resent(snapshots: list[tuple[set[int], float]], requests: list[dict], line_of: dict[str, int]):
    """I3: no request reached the upstream for a line after a snapshot had seen that line recorded."""
    first_seen: dict[int, float] = {}
    for lines, at in snapshots:
        for line in lines:
            first_seen.setdefault(line, at)
    resent = sorted(
        line_of[r["text"]]
        for r in requests
        if line_of[r["text"]] in first_seen and r["t"] > first_seen[line_of[r["text"]]]
    )
    assert not resent, f"lines sent upstream again after their result was recorded (I3): {resent[:20]}"
    return first_seen


@pytest.fixture
def slow_mock(tmp_path):
    mock = MockUpstream(tmp_path, latency=0.05)
    yield mock
    stop_mock(mock)


def test_three_workers_killed_at_random_keep_every_line_exactly_once(
    make_gateway, postgres_server, s3_server, slow_mock
):
    cluster = Cluster(make_gateway, postgres_server, s3_server, slow_mock, workers=3)
    try:
        n = 3000
        texts = {f"k{i:04d}": f"scale line {i}" for i in range(n)}
        line_of = {text: i for i, text in enumerate(texts.values(), 1)}
        _, batch = start_batch(cluster.api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=24)

        rng = random.Random(20261126)
        snapshots, owners, kills = [], set(), 0
        next_kill = time.time() + rng.uniform(0.5, 1.0)
        deadline = time.time() + 90
        while cluster.status(batch.id) in ("validating", "in_progress"):
            assert time.time() < deadline, "the batch did not finish in 90 s"
            snapshots.append(cluster.recorded(batch.id))
            owners |= cluster.shard_owners(batch.id)
            if time.time() >= next_kill and kills < 6 and 200 < len(snapshots[-1][0]) < n - 300:
                victim = rng.randrange(len(cluster.workers))
                cluster.workers[victim].send_signal(signal.SIGKILL)
                cluster.workers[victim].wait(10)
                kills += 1
                time.sleep(rng.uniform(0.0, 0.5))
                cluster.workers[victim] = cluster.start_worker(victim)
                next_kill = time.time() + rng.uniform(0.4, 1.2)
            time.sleep(0.05)
        assert kills >= 3, f"only {kills} kills landed mid-batch; the test proves little"
        assert len({owner.split(":")[1] for owner in owners}) >= 3, f"the batch was not spread over workers: {owners}"

        done = wait_status(cluster.api, batch.id, timeout=40)
        assert done.status == "completed"
        output, errors = outputs(cluster.api, done)
        assert_partition(output, errors, texts)  # I1
        assert errors == []
        for line in output:
            assert line["response"]["body"]["choices"][0]["message"]["content"] == "echo: " + texts[line["custom_id"]]
        assert_counts(done, n)  # I2
        assert done.request_counts.completed == n
        # Finalizing ran once: however many workers raced for it, one output file exists.
        written = [f.id for f in cluster.api.files.list(purpose="batch_output")]
        assert written == [done.output_file_id]

        requests = slow_mock.requests()
        assert_never_resent(snapshots, requests, line_of)  # I3
        sends = Counter(line_of[r["text"]] for r in requests)
        assert set(sends) == set(range(1, n + 1)), "every line was sent"
        # Only lines in flight at a kill are sent twice (a dozen or so per kill): shards resume, never restart.
        assert sum(count - 1 for count in sends.values()) < n // 10, sends.most_common(5)
    finally:
        cluster.stop()


def test_workers_reconnect_and_finish_after_postgresql_restarts_mid_batch(make_gateway, s3_server, slow_mock):
    postgres = PostgresServer()  # its own server: the restart must not disturb other tests
    cluster = Cluster(make_gateway, postgres, s3_server, slow_mock, workers=2)
    try:
        n = 1500
        texts = {f"p{i:04d}": f"restart line {i}" for i in range(n)}
        line_of = {text: i for i, text in enumerate(texts.values(), 1)}
        _, batch = start_batch(cluster.api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=16)
        while len((recorded := cluster.recorded(batch.id))[0]) < 300:
            time.sleep(0.05)
        before = recorded
        postgres.stop()
        down = http(cluster.api_gateway, "GET", f"/v1/batches/{batch.id}", allow_5xx=True)
        assert down.status == 503, down.body  # the API says so plainly while the database is away
        assert down.json["error"]["type"] == "server_error" and "database" in down.json["error"]["message"]
        time.sleep(2.0)  # longer than a lease: every worker's calls fail for a while
        postgres.start()
        restarted_at = time.time()

        done = wait_status(cluster.api, batch.id, timeout=60)
        assert done.status == "completed"
        assert all(worker.poll() is None for worker in cluster.workers), "a worker died with the database"
        output, errors = outputs(cluster.api, done)
        assert_partition(output, errors, texts)  # I1
        assert errors == []
        assert_counts(done, n)  # I2
        requests = slow_mock.requests()
        assert_never_resent([before], requests, line_of)  # I3 across the restart
        assert any(r["t"] > restarted_at for r in requests), "the batch went on after the restart"
    finally:
        cluster.stop()
        postgres.close()


def test_cancel_and_expiry_reach_every_worker_and_two_batches_share_them(
    make_gateway, postgres_server, s3_server, slow_mock, monkeypatch
):
    # Long enough for the first batch to get going on a loaded machine before the second one's window ends.
    monkeypatch.setitem(SCALE_OUT_ENV, "BATCHGATE_COMPLETION_WINDOW_SECONDS", "15")
    monkeypatch.setitem(SCALE_OUT_ENV, "BATCHGATE_CANCEL_GRACE_SECONDS", "1")
    cluster = Cluster(make_gateway, postgres_server, s3_server, slow_mock, workers=3)
    try:
        n = 2000
        texts = {name: {f"{name}{i:04d}": f"{name} line {i}" for i in range(n)} for name in ("a", "b")}
        _, cancelled = start_batch(cluster.api, [chat_line(c, t) for c, t in texts["a"].items()], max_concurrency=12)
        # Slow enough (4 in flight at 50 ms: about 25 s) that its window ends first.
        _, expiring = start_batch(cluster.api, [chat_line(c, t) for c, t in texts["b"].items()], max_concurrency=4)
        while len(cluster.recorded(cancelled.id)[0]) < 200:
            assert time.time() < cancelled.created_at + 12, "the first batch did not get going in time"
            time.sleep(0.05)
        assert len(cluster.shard_owners(cancelled.id) | cluster.shard_owners(expiring.id)) >= 3
        assert len(cluster.recorded(expiring.id)[0]) >= 30, "the second batch is served at the same time"
        cancel_at = time.time()
        assert cluster.api.batches.cancel(cancelled.id).status == "cancelling"

        done = wait_status(cluster.api, cancelled.id, timeout=20)
        assert done.status == "cancelled"
        late = [r for r in slow_mock.requests() if r["text"].startswith("a ") and r["t"] > cancel_at + 1.0 + 1.0]
        assert not late, f"{len(late)} lines of the cancelled batch were sent after the grace period"
        output, errors = outputs(cluster.api, done)
        assert_partition(output, errors, texts["a"])  # I1
        assert_counts(done, n)  # I2
        assert 200 <= len(output) < n and all(e["error"]["code"] == "batch_cancelled" for e in errors)

        expired = wait_status(cluster.api, expiring.id, timeout=20)
        assert expired.status == "expired"
        output, errors = outputs(cluster.api, expired)
        assert_partition(output, errors, texts["b"])
        assert_counts(expired, n)
        assert len(output) > 100 and all(e["error"]["code"] == "batch_expired" for e in errors)
        late = [r for r in slow_mock.requests() if r["text"].startswith("b ") and r["t"] > expired.expires_at + 1.5]
        assert not late, f"{len(late)} lines of the expired batch were sent after its window"
    finally:
        cluster.stop()
