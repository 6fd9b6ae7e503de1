"""The benchmark suite keeps working: it runs once in its tiny configuration (figures are not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_suite_runs_and_reports_every_figure(tmp_path):
    out, docs = tmp_path / "results.json", tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n\n<!-- results -->\nold table\n<!-- /results -->\n\nafter\n")
    run = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(out), "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert result["overhead"]["ratio"] > 0 and result["overhead"]["gateway_cpu_seconds_per_1000_lines"] > 0
    assert result["saturation"]["ratio"] >= 1.0  # nothing beats lines × latency / capacity
    assert result["saturation"]["upstream_peak_in_flight"] <= 16
    assert len(result["memory"]["sizes"]) == 3 and result["memory"]["max_mb"] > 0
    assert result["ingest"]["mb_per_second"] > 0 and result["ingest"]["reference_read_and_parse_mb_per_second"] > 0
    assert result["ingest"]["ratio"] > 0
    assert result["chaos"]["ratio"] > 0 and result["chaos"]["runs"] == 1
    assert result["capacity_429"]["ratio"] >= 1.0 and result["capacity_429"]["with_retry_after"]["ratio"] >= 1.0
    cache = result["prefix_cache"]
    for run in (cache["off"], cache["on"]):  # every line answered once, by the replicas of one pool
        assert run["requests"] == cache["lines"] and len(run["requests_per_replica"]) == cache["replicas"]
        assert 0 < run["prefilled_tokens"] <= run["prompt_tokens"]
        assert run["batch_cached_tokens"] == run["prompt_tokens"] - run["prefilled_tokens"]  # as the mock reported
    assert cache["makespan_ratio"] > 0 and cache["prefill_ratio"] > 0
    text = docs.read_text()
    assert "old table" not in text and "intro" in text and text.rstrip().endswith("after")
    assert "quick configuration" in text
    assert "| overhead |" in text and "| ingest |" in text and "| capacity_429 |" in text and "| prefix_cache |" in text


def test_local_models_bench_runs_and_reports_both_engines(tmp_path):
    out = tmp_path / "local.json"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "local_models.py"),
            "--texts",
            "4",
            "--per-request",
            "2",
            "--chats",
            "2",
            "--max-tokens",
            "2",
            "--parallel",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["embeddings"]["texts_per_second_1_in_flight"] > 0
    assert result["chat"]["tokens_per_second_2_in_flight"] > 0 and result["chat"]["parallel_ratio"] > 0


def test_scale_out_bench_runs_and_reports_a_speedup(tmp_path):
    out = tmp_path / "scale_out.json"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "scale_out.py"),
            "--lines",
            "300",
            "--workers",
            "1",
            "2",
            "--shard-lines",
            "50",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["workers"] for r in result["runs"]] == [1, 2]
    assert all(r["lines_per_second"] > 0 and r["speedup"] > 0 for r in result["runs"])
