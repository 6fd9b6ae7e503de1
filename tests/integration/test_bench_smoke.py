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


def test_scale_out_bench_runs_and_reports_a_speedup(tmp_path):
    out = tmp_path / "scale_out.json"
    run = subprocess.run([sys.executable, str(BENCH / "scale_out.py"), "--lines", "300", "--workers", "1", "2",
                          "--shard-lines", "50", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["workers"] for r in result["runs"]] == [1, 2]
    assert all(r["lines_per_second"] > 0 and r["speedup"] > 0 for r in result["runs"])
