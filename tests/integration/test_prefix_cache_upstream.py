"""The benchmark's mock prefix-cache upstream keeps its model: what it caches, when, and what it reports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.servers import free_port, wait_for_port

MOCK = Path(__file__).resolve().parents[2] / "bench" / "prefix_cache_upstream.py"
# 0.01 s per prefilled token: a prefix of ~100 tokens is a second of prefill, so requests sent together
# surely arrive before it ends.
OPTIONS = ("--base-latency", "0", "--token-seconds", "0.01", "--cache-entries", "2")


@pytest.fixture
def mock():
    """start(slots) → the URL of a replica running that many requests at once (more wait for a slot)."""
    started = []

    def start(slots: int) -> str:
        port = free_port()
        process = subprocess.Popen([sys.executable, str(MOCK), "--ports", str(port), "--slots", str(slots), *OPTIONS])
        started.append(process)
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def body(group: int, question: str) -> dict:
    prefix = [{"role": "system", "content": f"group {group} " + "shared instructions " * 20}]
    return {"model": "m", "messages": [*prefix, {"role": "user", "content": question}]}


async def ask(url: str, *bodies: dict) -> list[dict]:
    async with aiohttp.ClientSession() as session:

        async def one(sent: dict) -> dict:
            async with session.post(f"{url}/v1/chat/completions", json=sent) as answer:
                assert answer.status == 200
                return (await answer.json())["usage"]

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def stats(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/stats") as answer:
        return await answer.json(content_type=None)


def cached(usage: dict) -> int:
    return usage["prompt_tokens_details"]["cached_tokens"]


async def test_a_prefix_is_cached_once_its_prefill_ends_and_the_oldest_leaves_first(mock):
    url = mock(4)
    together = await ask(url, body(1, "a?"), body(1, "b?"))  # none sees the other's cache write
    assert [cached(u) for u in together] == [0, 0]
    [after] = await ask(url, body(1, "c?"))
    shared = len(body(1, "c?")["messages"][0]["content"]) // 4  # tokens as characters / 4
    assert cached(after) == shared > 0
    for group in (2, 3):  # two newer prefixes fill the LRU of 2
        await ask(url, body(group, "d?"))
    [evicted] = await ask(url, body(1, "e?"))
    assert cached(evicted) == 0
    figures = await stats(url)
    assert figures["requests"] == 6 and figures["hits"] == 1
    assert figures["prefilled_tokens"] == figures["prompt_tokens"] - shared


async def test_a_request_waiting_for_a_slot_looks_the_cache_up_when_it_starts(mock):
    url = mock(1)
    first, second = await ask(url, body(1, "a?"), body(1, "b?"))
    assert sorted([cached(first), cached(second)])[0] == 0 and max(cached(first), cached(second)) > 0
    assert (await stats(url))["peak"] == 1
