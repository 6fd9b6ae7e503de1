"""Saturation's job, for the gateway's CPU per line: a gauge that a busy machine moves less than the makespan.

    python bench/saturation_cpu.py                  # 10,000 lines, 0.2 s latency, capacity 256, as bench/run.py
    python bench/saturation_cpu.py --runs 3 --src OTHER_CHECKOUT/src   # the same, on another version's sources
    python bench/saturation_cpu.py --spy /tmp/spy.txt [--gil]           # and py-spy's raw samples of the server

It prints one JSON line per run: the makespan ratio as bench/run.py computes it, the CPU seconds per line
of the gateway's process tree and of its event loop's thread alone (the thread every answer waits for),
the mock's mean turnaround, and where the time outside the makespan went: from the batch's creation to
the first request at the upstream, and from the last answer to the client seeing the batch completed.
On a machine shared with other jobs the makespan follows their load; the loop's CPU per line much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # bench/run.py: its mock, gateway and client


def loop_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop's)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / bench.TICKS


async def timed_batch(gateway: bench.Gateway, path: Path, window: int) -> tuple[float, float, dict]:
    """(created at, seen terminal at, batch), in wall-clock seconds as the mock stamps its requests."""
    async with bench.aiohttp.ClientSession() as session:
        api = bench.Api(gateway, session)
        batch = await api.create(await api.upload(path), window)
        created = time.time()
        batch = await api.wait(batch["id"], bench.finished)
        return created, time.time(), batch


def one_run(work: Path, lines: int, latency: float, capacity: int, spy: str | None, gil: bool) -> dict:
    path = work / "saturation.jsonl"
    bench.write_input(path, lines)
    upstream = bench.FastUpstream(processes=1, latency=latency, capacity=capacity)
    gateway = bench.start_gateway(work / "gateway", upstream.base_url, f"max_concurrency = {capacity}")
    profiler = None
    try:
        pid = gateway.process.pid
        if spy:
            command = ["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", spy, "--nonblocking"]
            profiler = subprocess.Popen(command + (["--gil"] if gil else []), stdout=subprocess.DEVNULL)
            time.sleep(1)  # py-spy attaches
        meter, loop_before = bench.Meter(pid), loop_cpu(pid)
        meter.start()
        created, seen, batch = asyncio.run(timed_batch(gateway, path, capacity))
        _, cpu = meter.finish()
        loop = loop_cpu(pid) - loop_before
        stats = asyncio.run(upstream.stats())
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        gateway.stop()
        upstream.stop()
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == lines, batch
    makespan = stats["last"] - stats["first"]
    return {
        "ratio": round(makespan / (lines * latency / capacity), 4),
        "makespan_seconds": round(makespan, 3),
        "cpu_us_per_line": round(cpu / lines * 1e6, 1),
        "loop_cpu_us_per_line": round(loop / lines * 1e6, 1),
        "mean_turnaround_ms": stats["mean_turnaround_ms"],
        "upstream_mean_lateness_ms": stats["mean_lateness_ms"],
        "created_to_first_request_seconds": round(stats["first"] - created, 3),
        "last_answer_to_seen_completed_seconds": round(seen - stats["last"], 3),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--lines", type=int, default=bench.Config.saturation_lines)
    parser.add_argument("--src", type=Path, help="run the gateway on these sources (another checkout's src/)")
    parser.add_argument("--spy", help="write py-spy's raw samples of the gateway here (py-spy on the PATH)")
    parser.add_argument("--gil", action="store_true", help="with --spy: only samples holding the GIL")
    args = parser.parse_args()
    if args.src:
        os.environ["PYTHONPATH"] = str(args.src.resolve())  # the gateway's process inherits it
    cfg = bench.Config()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="batchgate-saturation-") as folder:
            result = one_run(
                Path(folder), args.lines, cfg.saturation_latency, cfg.saturation_capacity, args.spy, args.gil
            )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
