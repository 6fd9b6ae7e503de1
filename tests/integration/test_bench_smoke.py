"""The benchmarks keep working: each runs once in a tiny configuration (figures are not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_e2e_bench_runs_and_reports_a_ratio(tmp_path):
    out = tmp_path / "e2e.json"
    run = subprocess.run([sys.executable, str(BENCH / "e2e.py"), "--lines", "300", "--concurrency", "32",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["lines"] == 300 and result["ratio"] > 0 and result["gateway_peak_rss_mb"] > 0


def test_local_models_bench_runs_and_reports_both_engines(tmp_path):
    out = tmp_path / "local.json"
    run = subprocess.run([sys.executable, str(BENCH / "local_models.py"), "--texts", "4", "--per-request", "2",
                          "--chats", "2", "--max-tokens", "2", "--parallel", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["embeddings"]["texts_per_second_1_in_flight"] > 0
    assert result["chat"]["tokens_per_second_2_in_flight"] > 0 and result["chat"]["parallel_ratio"] > 0
