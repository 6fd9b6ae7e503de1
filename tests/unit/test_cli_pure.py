"""The pure parts of the client commands: the failure mapping, the pace of a batch, default result paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgate.cli.client import failure_of
from batchgate.cli.progress import Counts, Pace, clock
from batchgate.cli.run import EXIT_BY_STATUS, Targets


@pytest.mark.parametrize(
    "status, body, code, text",
    [
        (401, b'{"error": {"message": "Invalid API key."}}', 1, "refused the API key (HTTP 401): Invalid API key."),
        (404, b'{"error": {"message": "No batch found."}}', 1, "No batch found. (HTTP 404)"),
        (409, b'{"error": {"message": "Cannot cancel."}}', 1, "Cannot cancel. (HTTP 409)"),
        (503, b'{"error": {"message": "Too busy."}}', 3, "the server failed (HTTP 503): Too busy."),
        (502, b"<html>bad gateway</html>", 3, "the server failed (HTTP 502): Bad Gateway"),
    ],
)
def test_every_failed_answer_maps_to_one_line_and_its_exit_code(status, body, code, text):
    failure = failure_of(status, body, "Bad Gateway")
    assert failure.exit_code == code and text in failure.message


def test_the_pace_follows_the_counts_and_gives_the_time_left():
    pace, counts = Pace(window=10), Counts("in_progress", 40, 2, 100)
    assert pace.rate is None and pace.seconds_left(counts) is None
    pace.observe(0.0, 0)
    pace.observe(4.0, 40)
    assert pace.rate == 10 and pace.seconds_left(counts) == 6
    pace.observe(20.0, 60)  # the window forgets the fast start
    assert pace.rate == pytest.approx(20 / 16)


def test_clock():
    assert clock(None) == "--:--" and clock(65) == "01:05" and clock(3 * 3600 + 5) == "3:00:05"


def test_counts_and_exit_codes_of_an_ended_batch():
    batch = {"status": "completed", "request_counts": {"total": 3, "completed": 2, "failed": 1}}
    counts = Counts.of(batch)
    assert counts == Counts("completed", 3, 1, 3)
    assert EXIT_BY_STATUS["completed"](counts) == 1
    assert EXIT_BY_STATUS["completed"](Counts("completed", 3, 0, 3)) == 0
    assert {EXIT_BY_STATUS[s](counts) for s in ("failed", "expired", "cancelled")} == {2}


def test_default_result_paths_sit_beside_the_input():
    assert Targets.of(Path("d/in.jsonl"), None, None) == Targets(Path("d/in.output.jsonl"), Path("d/in.errors.jsonl"))
    watched = Targets.of(Path("batch_abc"), Path("o.jsonl"), None)
    assert watched == Targets(Path("o.jsonl"), Path("batch_abc.errors.jsonl"))


def test_a_batch_table_shows_the_servers_estimate_while_it_runs():
    from rich.console import Console

    from batchgate.cli.output import table_of

    batch = {"object": "batch", "id": "batch_1", "status": "in_progress", "endpoint": "/v1/chat/completions"}
    console = Console(width=300, record=True)
    console.print(table_of({**batch, "created_at": 0, "estimated_completion_at": 90061}))
    text = console.export_text()
    assert "done by (UTC)" in text and "1970-01-02 01:01:01" in text
    console = Console(width=300, record=True)
    console.print(table_of({**batch, "created_at": 0, "estimated_completion_at": None}))
    assert "1970-01-02" not in console.export_text()


def test_the_cache_hit_rate_is_shown_once_an_upstream_reports_cached_tokens():
    from rich.console import Console

    from batchgate.cli.output import table_of
    from batchgate.cli.progress import describe

    counts = {"total": 4, "completed": 4, "failed": 0}
    cold = {"object": "batch", "id": "batch_1", "status": "completed", "request_counts": counts}
    warm = {**cold, "usage": {"input_tokens": 400, "input_tokens_details": {"cached_tokens": 260}}}
    assert Counts.of(cold).cache_hit_rate is None
    assert (
        Counts.of({**cold, "usage": {"input_tokens": 400, "input_tokens_details": {"cached_tokens": 0}}}).cache_hit_rate
        is None
    )
    assert Counts.of(warm).cache_hit_rate == 0.65
    assert describe("batch_1", Counts.of(warm), Pace()).endswith(", 65% cached")
    assert "cached" not in describe("batch_1", Counts.of(cold), Pace())
    for batch, shown in ((warm, True), (cold, False)):
        console = Console(width=300, record=True)
        console.print(table_of(batch))
        text = console.export_text()
        assert "cache hit" in text and ("65%" in text) is shown
