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
