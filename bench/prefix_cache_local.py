"""The prefix_cache workload, small, against the built-in chat model: cache-aware execution off, then on.

    python bench/prefix_cache_local.py [--lines 40] [--groups 4] [--prefix-tokens 200] [--slots 4]

Each run starts a fresh `batchgate serve` with no [[upstreams]] (so the built-in smollm2-135m-instruct,
llama.cpp with `--slots` slots, each keeping the prompt it last ran), loads the model with one call,
then runs the same shuffled file of prefix groups as a batch: `BATCHGATE_CACHE_AWARE=false`, then
`true`. It reports the makespan (upload to completed) and the cached prompt tokens the engine
reported, as the batch's `usage` sums them. Writes bench/results/prefix_cache_local.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import gateway_with, run_to_the_end, write_prefix_input

SMOL = "smollm2-135m-instruct"
RESULTS = Path(__file__).resolve().parent / "results" / "prefix_cache_local.json"


async def load_model(url: str, key: str) -> None:
    body = {"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        headers = {"Authorization": f"Bearer {key}"}
        async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as answer:
            assert answer.status == 200, await answer.text()


def one_run(work: Path, path: Path, lines: int, slots: int, aware: bool) -> dict:
    env = {"BATCHGATE_CACHE_AWARE": "true" if aware else "false", "BATCHGATE_LOCAL_CHAT_SLOTS": str(slots)}
    gateway = gateway_with(work, "", env)
    try:
        asyncio.run(load_model(gateway.url, gateway.key))
        seconds, batch = asyncio.run(run_to_the_end(gateway, path, slots * 2))
    finally:
        gateway.stop()
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == lines, batch
    usage = batch["usage"]
    cached = usage["input_tokens_details"]["cached_tokens"]
    return {
        "makespan_seconds": round(seconds, 2),
        "input_tokens": usage["input_tokens"],
        "cached_tokens": cached,
        "cached_share": round(cached / usage["input_tokens"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--prefix-tokens", type=int, default=200, help="about this many tokens shared per group")
    parser.add_argument("--slots", type=int, default=4, help="llama.cpp slots (local_chat_slots)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict = {
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "lines": args.lines,
        "groups": args.groups,
        "prefix_tokens": args.prefix_tokens,
        "slots": args.slots,
    }
    with tempfile.TemporaryDirectory(prefix="batchgate-prefix-local-") as folder:
        path = Path(folder) / "prefix.jsonl"
        write_prefix_input(path, args.lines, args.groups, args.prefix_tokens, model=SMOL, max_tokens=2)
        for name, aware in (("off", False), ("on", True)):
            result[name] = one_run(Path(folder) / name, path, args.lines, args.slots, aware)
            print(f"cache_aware {name}: {result[name]}", flush=True)
    result["makespan_ratio"] = round(result["off"]["makespan_seconds"] / result["on"]["makespan_seconds"], 3)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
