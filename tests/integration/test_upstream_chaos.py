"""A batch through a live gateway against an upstream with sporadic faults: nothing lost, nothing sent twice, no stall.

The mock answers 5% of attempts 500, 5% 429 (Retry-After: 1), resets 2% of connections and lets 1% hang,
drawn from a fixed seed. Each fault delays only the line that met it.
"""

from __future__ import annotations

import time
from collections import defaultdict

from tests.support.lifecycle import (
    assert_counts,
    assert_partition,
    chat_line,
    client,
    config,
    outputs,
    start_batch,
    wait_status,
)
from tests.support.servers import MockUpstream

LINES = 2000
CHAOS = "500=0.05,429=0.05,reset=0.02,hang=0.01"
# Hangs end at this timeout; backoff stays short, so the run is about the faults, not the waits.
SETTINGS = "request_timeout_seconds = 0.5\nretry_base_seconds = 0.1\nmax_attempts = 8\n"


def test_sporadic_faults_delay_only_their_own_lines(make_gateway, tmp_path):
    upstream = MockUpstream(tmp_path, 0.0, True, "--chaos", CHAOS, "--seed", "7")
    try:
        gateway = make_gateway(config({"name": "chaotic", "base_url": upstream.base_url}, extra=SETTINGS))
        api = client(gateway)
        lines = [chat_line(f"r{i}", f"line {i}") for i in range(LINES)]
        started = time.monotonic()
        _, batch = start_batch(api, lines, max_concurrency=64)
        batch = wait_status(api, batch.id, timeout=90)
        elapsed = time.monotonic() - started
        requests = upstream.requests()
    finally:
        upstream.stop()

    output, errors = outputs(api, batch)
    assert_partition(output, errors, (line["custom_id"] for line in lines))  # I1
    assert batch.status == "completed"
    assert_counts(batch, LINES)  # I2

    statuses = defaultdict(list)
    for entry in requests:
        statuses[entry["text"]].append(entry["status"])
    faults = sum(status != 200 for history in statuses.values() for status in history)
    assert faults > LINES // 10  # the chaos happened
    for text, history in statuses.items():  # I3: nothing answered 200 is sent again
        assert 200 not in history[:-1], (text, history)
    assert len(output) == LINES - len(errors) and len(errors) <= 2
    # Fault-free, this takes a few seconds here; each 429 costs its own line a second and each hang half a
    # second. Pausing the whole upstream for every 429 took well over a minute.
    assert elapsed < 60, elapsed
