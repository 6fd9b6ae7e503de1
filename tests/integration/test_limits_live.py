"""Rate windows through a live gateway: lines wait for their window instead of exceeding it."""

from __future__ import annotations

from tests.support.lifecycle import chat_line, client, config, start_batch, wait_status
from tests.support.servers import MockUpstream


def test_requests_per_minute_hold_the_extra_lines_back(make_gateway, mock_upstream):
    # 60 a minute: a full bucket lets 60 go at once, then one a second.
    gateway = make_gateway(config({"name": "slow", "base_url": mock_upstream.base_url, "rpm": 60}))
    api = client(gateway)
    _, batch = start_batch(api, [chat_line(f"r{i}", f"line {i}") for i in range(63)], max_concurrency=64)
    batch = wait_status(api, batch.id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.completed == 63
    times = sorted(entry["t"] for entry in mock_upstream.requests())
    assert len(times) == 63
    assert times[59] - times[0] < 1.0  # the first minute's worth went at once
    # The last three waited about a second each (the bucket refills while the first sixty go out, more so on a
    # busy machine); without the window all 63 would go within the first second.
    assert times[62] - times[0] >= 2.5


def test_model_limits_from_the_config_file_cap_lines_in_flight(make_gateway, tmp_path):
    upstream = MockUpstream(tmp_path, 0.1)
    try:
        gateway = make_gateway(
            config({"name": "u", "base_url": upstream.base_url}, extra='[[limits]]\nmodel = "m"\nmax_concurrency = 2\n')
        )
        api = client(gateway)
        _, batch = start_batch(api, [chat_line(f"r{i}", f"line {i}") for i in range(10)], max_concurrency=10)
        assert wait_status(api, batch.id, timeout=60).status == "completed"
        spans = sorted(entry["t"] for entry in upstream.requests())
        # Two at a time, 0.1 s each: ten lines take five rounds, not one.
        assert spans[-1] - spans[0] >= 0.35
    finally:
        upstream.stop()
