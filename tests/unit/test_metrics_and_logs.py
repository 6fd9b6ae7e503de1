"""metrics.py and logs.py in process: the rate-wait counter of a door, the JSON log lines, their settings."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from batchgate.domain.fairness import Flow
from batchgate.errors import ConfigError
from batchgate.logs import JsonFormatter, log_context
from batchgate.metrics import REGISTRY
from batchgate.settings import Settings
from batchgate.upstream.door import Door


def rate_waits(door: str) -> float:
    return REGISTRY.get_sample_value("batchgate_rate_limit_waits_total", {"door": door}) or 0.0


async def test_a_request_held_by_the_rpm_window_counts_once_however_often_the_door_looks():
    now = [0.0]
    door = Door("rpm-door", lambda: 10, rpm=1, clock=lambda: now[0])  # a bucket of one request a minute
    await door.enter(Flow(), 0)  # takes it
    held = asyncio.create_task(door.enter(Flow(), 0))
    await asyncio.sleep(0)
    door.leave()  # the door looks again: the same request, still held
    await asyncio.sleep(0)
    assert not held.done() and rate_waits("rpm-door") == 1
    now[0] = 60.0  # refilled: the next arrival's look lets the held one in, and is held itself
    late = asyncio.create_task(door.enter(Flow(), 0))
    await asyncio.wait_for(held, 1)
    assert not late.done() and rate_waits("rpm-door") == 2
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late


async def test_a_request_held_by_the_concurrency_limit_is_no_rate_wait():
    door = Door("full-door", lambda: 1)
    await door.enter(Flow(), 0)
    held = asyncio.create_task(door.enter(Flow(), 0))
    await asyncio.sleep(0)
    door.leave()
    await asyncio.wait_for(held, 1)
    assert rate_waits("full-door") == 0


def record(message: str, **extra) -> logging.LogRecord:
    made = logging.getLogger("batchgate.test").makeRecord("batchgate.test", logging.INFO, "f", 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_json_lines_carry_the_context_and_the_extra_fields():
    formatter = JsonFormatter()
    with log_context(batch_id="batch_1", shard=3):
        inside = json.loads(formatter.format(record("retrying", upstream="u1")))
    outside = json.loads(formatter.format(record("started")))
    assert inside["batch_id"] == "batch_1" and inside["shard"] == 3 and inside["upstream"] == "u1"
    assert {"ts", "level", "logger", "message"} <= inside.keys() and inside["level"] == "info"
    assert inside["ts"].endswith("Z") and inside["message"] == "retrying"
    assert outside.keys() == {"ts", "level", "logger", "message"}


def test_a_traceback_stays_inside_its_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.getLogger("batchgate.test").makeRecord(
            "batchgate.test", logging.ERROR, "f", 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(failed)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BATCHGATE_LOG_FORMAT": "xml"}, "log_format must be one of text, json"),
        ({"BATCHGATE_METRICS_PORT": "0"}, "metrics_port must be a port number"),
        ({"BATCHGATE_METRICS_PORT": "70000"}, "metrics_port must be a port number"),
    ],
)
def test_bad_log_and_metrics_settings_are_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env=env)


def test_metrics_settings_from_the_environment():
    settings = Settings.load(env={"BATCHGATE_METRICS_ENABLED": "false", "BATCHGATE_METRICS_PORT": "9100"})
    assert (settings.metrics_enabled, settings.metrics_port) == (False, 9100)
    assert (Settings().metrics_enabled, Settings().metrics_port, Settings().log_format) == (True, None, "text")
