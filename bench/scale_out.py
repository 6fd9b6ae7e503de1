"""Lines/s of one batch with 1, 2 and 4 `batchgate worker` processes on PostgreSQL + S3.

    python bench/scale_out.py --lines 20000 --latency 0.05

Starts a PostgreSQL server in a temporary folder, moto's S3 server, the test mock upstream
(each answer delayed by --latency) and one API process (`serve --no-worker`); then for each
worker count, a fresh database and bucket, that many workers, and one batch timed from create
to completed. Each worker works on --worker-shards shards at once, each with a window of
--concurrency / --max-shards-per-batch lines, so one worker keeps worker_shards × window lines
in flight. Reports lines/s, the speed-up over one worker measured in the same run, and the
ratio to the ideal (lines in flight ÷ latency). Writes bench/results/scale_out.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.lifecycle import chat_line, client, config, start_batch, start_worker, stop_process
from tests.support.servers import Gateway, MockUpstream
from tests.support.services import PostgresServer, S3Server


def run_once(
    folder: Path, postgres: PostgresServer, s3: S3Server, mock: MockUpstream, workers: int, args: argparse.Namespace
) -> dict:
    env = {
        **s3.env,
        "BATCHGATE_DATABASE_URL": postgres.database(),
        "BATCHGATE_STORAGE_URL": s3.bucket(),
        "BATCHGATE_NO_WORKER": "1",
        "BATCHGATE_WORKER_SHARDS": str(args.worker_shards),
        "BATCHGATE_MAX_SHARDS_PER_BATCH": str(args.max_shards_per_batch),
        "BATCHGATE_SHARD_LINES": str(args.shard_lines),
        "BATCHGATE_LEASE_SECONDS": "10",
    }
    folder.mkdir()
    api_process = Gateway(folder, config({"name": "mock", "base_url": mock.base_url}), env)
    processes = [start_worker(api_process, f"worker{i}.log") for i in range(workers)]
    try:
        api = client(api_process)
        lines = [chat_line(f"c{i}", f"bench line {i}") for i in range(args.lines)]
        _, batch = start_batch(api, lines, max_concurrency=args.concurrency)
        started = time.perf_counter()
        while (current := api.batches.retrieve(batch.id)).status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert current.status == "completed" and current.request_counts.completed == args.lines, current
    finally:
        for process in processes:
            stop_process(process)
        api_process.stop()
    shards = -(-args.lines // args.shard_lines)
    window = args.concurrency // min(args.concurrency, args.max_shards_per_batch, shards)
    in_flight = min(args.concurrency, workers * args.worker_shards * window)
    return {
        "workers": workers,
        "lines_per_second": round(args.lines / elapsed),
        "ideal_lines_per_second": round(in_flight / args.latency),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=512, help="the batch's max_concurrency")
    parser.add_argument("--worker-shards", type=int, default=2)
    parser.add_argument("--max-shards-per-batch", type=int, default=16)
    parser.add_argument("--shard-lines", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "scale_out.json")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="batchgate-scale-"))
    postgres, s3 = PostgresServer(), S3Server(root)
    mock = MockUpstream(root, latency=args.latency, log=False)
    try:
        runs = [run_once(root / f"w{n}", postgres, s3, mock, n, args) for n in args.workers]
    finally:
        mock.stop()
        s3.close()
        postgres.close()
        shutil.rmtree(root, ignore_errors=True)
    base = runs[0]["lines_per_second"]
    for run in runs:
        run["speedup"] = round(run["lines_per_second"] / base, 2)
        run["ratio_to_ideal"] = round(run["lines_per_second"] / run["ideal_lines_per_second"], 2)
    report = {
        "lines": args.lines,
        "latency": args.latency,
        "concurrency": args.concurrency,
        "worker_shards": args.worker_shards,
        "max_shards_per_batch": args.max_shards_per_batch,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
