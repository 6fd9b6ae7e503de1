"""Throughput of the built-in local models, one line in flight against several.

    python bench/local_models.py --texts 256 --chats 16 --parallel 4

Runs the `local` upstream in this process, exactly as `batchgate serve` does (thread pools,
lazy loading), after one warm-up call per model so loading is not counted:
  - embeddings (multilingual-e5-small): texts/s with one text per request, 1 request in flight
    and then `--parallel` in flight, and with `--per-request` texts in each request;
  - chat (smollm2-135m-instruct): completion tokens/s with 1 line in flight and then
    `--parallel` (as many llama.cpp slots), each line asking for `--max-tokens` at temperature 0.
Prints the figures and the parallel ÷ single ratios; writes bench/results/local_models.json.
The machine is shared and noisy: compare the ratios, and read the absolute figures as rough.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from batchgate.settings import Settings
from batchgate.upstream.local import DEFAULT_LOCAL, LocalUpstream

E5 = "multilingual-e5-small"
SMOL = "smollm2-135m-instruct"
RESULTS = Path(__file__).resolve().parent / "results" / "local_models.json"


async def run_all(bodies: list[dict], endpoint: str, local: LocalUpstream, parallel: int) -> tuple[float, list]:
    """Send every body with at most `parallel` in flight; (seconds, answers)."""
    window = asyncio.Semaphore(parallel)

    async def one(body: dict):
        async with window:
            outcome = await local.send(endpoint, body)
            assert outcome.ok, outcome
            return outcome.body

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(b) for b in bodies))
    return time.perf_counter() - started, answers


def sentence(i: int) -> str:
    return f"Sentence number {i} is about the weather in city {i % 37}, which was mild and sunny today."


async def embeddings(local: LocalUpstream, texts: int, parallel: int, per_request: int) -> dict:
    single_bodies = [{"model": E5, "input": sentence(i)} for i in range(texts)]
    grouped = [
        {"model": E5, "input": [sentence(i) for i in range(j, min(j + per_request, texts))]}
        for j in range(0, texts, per_request)
    ]
    await run_all(single_bodies[:2], "/v1/embeddings", local, 1)  # load the model
    one, _ = await run_all(single_bodies, "/v1/embeddings", local, 1)
    many, _ = await run_all(single_bodies, "/v1/embeddings", local, parallel)
    batched, _ = await run_all(grouped, "/v1/embeddings", local, 1)
    return {
        "texts": texts,
        "texts_per_second_1_in_flight": round(texts / one, 1),
        f"texts_per_second_{parallel}_in_flight": round(texts / many, 1),
        f"texts_per_second_{per_request}_per_request": round(texts / batched, 1),
        "parallel_ratio": round(one / many, 2),
    }


async def chat(local: LocalUpstream, lines: int, parallel: int, max_tokens: int) -> dict:
    bodies = [
        {
            "model": SMOL,
            "temperature": 0,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"Write a short story about robot number {i}."}],
        }
        for i in range(lines)
    ]
    await run_all(bodies[:1], "/v1/chat/completions", local, 1)  # load the model
    figures = {"lines": lines, "max_tokens": max_tokens}
    seconds = {}
    for in_flight in (1, parallel):
        took, answers = await run_all(bodies, "/v1/chat/completions", local, in_flight)
        tokens = sum(a["usage"]["completion_tokens"] for a in answers)
        seconds[in_flight] = took
        figures[f"tokens_per_second_{in_flight}_in_flight"] = round(tokens / took, 1)
        figures[f"lines_per_second_{in_flight}_in_flight"] = round(lines / took, 2)
    figures["parallel_ratio"] = round(seconds[1] / seconds[parallel], 2)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--per-request", type=int, default=32)
    parser.add_argument("--chats", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="the local_threads setting (0: the default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    local = LocalUpstream(DEFAULT_LOCAL, Settings(local_chat_slots=args.parallel, local_threads=args.threads))
    try:
        result = {
            "cpus": os.cpu_count(),
            "parallel": args.parallel,
            "local_threads": args.threads,
            "embeddings": await embeddings(local, args.texts, args.parallel, args.per_request),
            "chat": await chat(local, args.chats, args.parallel, args.max_tokens),
        }
    finally:
        await local.close()
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
