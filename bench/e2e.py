"""End-to-end throughput and memory of one batch, as ratios measured in the same run.

    python bench/e2e.py --lines 20000 --concurrency 256

Starts the test mock upstream and a real `batchgate serve` (each its own process), then:
  - baseline: a plain aiohttp client sends the same bodies to the mock at the same concurrency;
  - gateway: the same lines as one batch through batchgate (upload, validate, run, finalize).
Prints lines/s of both, their ratio, and the gateway's peak RSS; writes bench/results/e2e.json.
The machine is shared and noisy: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.servers import Gateway, MockUpstream, upstream_config  # noqa: E402


def bodies(n: int) -> list[dict]:
    return [{"model": "m", "messages": [{"role": "user", "content": f"hello {i}"}]} for i in range(n)]


async def baseline(url: str, items: list[dict], concurrency: int) -> float:
    """Lines/s of a plain aiohttp client with a sliding window of `concurrency` requests."""
    window = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(body: dict) -> bytes:
            async with window, session.post(url, json=body) as response:
                return await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in items))
        return len(items) / (time.perf_counter() - started)


class PeakRss(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except FileNotFoundError:
                return
            time.sleep(0.1)


def through_gateway(gateway: Gateway, items: list[dict], concurrency: int) -> dict:
    client = OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
    data = "".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": b})
                   + "\n" for i, b in enumerate(items)).encode()
    started = time.perf_counter()
    file = client.files.create(file=("bench.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  extra_body={"max_concurrency": concurrency})
    while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert batch.status == "completed" and batch.request_counts.completed == len(items), batch
    return {"seconds": elapsed, "lines_per_second": len(items) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the mock waits per request")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "e2e.json")
    args = parser.parse_args()
    items = bodies(args.lines)
    with tempfile.TemporaryDirectory() as folder:
        mock = MockUpstream(Path(folder), latency=args.latency, log=False)
        gateway = Gateway(Path(folder), upstream_config(("mock", mock.base_url, ["*"])),
                          env={"BATCHGATE_LOG_LEVEL": "warning"})
        try:
            plain = asyncio.run(baseline(mock.base_url + "/chat/completions", items, args.concurrency))
            rss = PeakRss(gateway.process.pid)
            rss.start()
            gated = through_gateway(gateway, items, args.concurrency)
            rss.running = False
        finally:
            gateway.stop()
            mock.stop()
    result = {"lines": args.lines, "concurrency": args.concurrency, "mock_latency": args.latency,
              "baseline_lines_per_second": round(plain), "gateway_lines_per_second": round(gated["lines_per_second"]),
              "ratio": round(gated["lines_per_second"] / plain, 3), "gateway_peak_rss_mb": round(rss.peak_kb / 1024)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
