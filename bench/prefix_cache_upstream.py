"""A mock OpenAI-compatible chat upstream with a prefix cache: a pool of replicas, one port each.

    python bench/prefix_cache_upstream.py --ports 9001,9002,9003,9004 [--slots 32] [--cache-entries 32]
        [--base-latency 0.02] [--token-seconds 0.0005]

Every port is one replica of an inference server (vLLM, SGLang, llama.cpp), all in this one process:
- it runs `slots` requests at once and queues the rest, like a server's running batch;
- it keeps an LRU of `cache-entries` prefixes; a request's prefix is its model and every message but
  the last. A request looks its prefix up when it gets a slot; a hit skips the prefix's tokens;
- a request takes `base-latency` (the decode of a short answer) plus `token-seconds` for each token
  it prefills. Its prefix enters the cache once its prefill is done, so requests that start together
  all miss: none sees another's cache write;
- its answer reports `usage.prompt_tokens` and `usage.prompt_tokens_details.cached_tokens`.
Tokens are counted as the gateway estimates them, characters / 4 (of each message's text).
`GET /stats` answers that replica's requests, hits, tokens prefilled and cached, first arrival and
last answer. Raw asyncio HTTP/1.1, like bench/fast_upstream.py, so it is never what limits a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import socket
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import orjson

from fast_upstream import content_length, exact_timers_loop  # run as a script from bench/

CHARS_PER_TOKEN = 4
# Timers are set this long before an answer is due, then to its due time (see fast_upstream.APPROACH).
APPROACH = 0.002


def tokens(messages: list) -> int:
    return sum(len(m.get("content") or "") for m in messages if isinstance(m, dict)) // CHARS_PER_TOKEN


def prefix_of(body: dict) -> tuple[bytes | None, int, int]:
    """(the prefix's cache key or None, its tokens, the prompt's tokens)."""
    messages = body.get("messages") or []
    leading = messages[:-1]
    total = tokens(messages)
    if not leading:
        return None, 0, total
    key = hashlib.blake2b(orjson.dumps([body.get("model"), leading]), digest_size=8).digest()
    return key, tokens(leading), total


def answer_bytes(prompt_tokens: int, cached_tokens: int) -> bytes:
    body = orjson.dumps(
        {
            "id": "chatcmpl-prefix",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "bench",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 1,
                "total_tokens": prompt_tokens + 1,
                "prompt_tokens_details": {"cached_tokens": cached_tokens},
            },
        }
    )
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@dataclass
class Stats:
    requests: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    cached_tokens: int = 0
    first: float = 0.0
    last: float = 0.0
    peak: int = 0
    lateness_seconds: float = 0.0

    def response(self) -> bytes:
        figures = {k: v for k, v in vars(self).items() if k != "lateness_seconds"}
        figures["mean_lateness_ms"] = round(self.lateness_seconds / self.requests * 1000, 3) if self.requests else 0.0
        body = orjson.dumps(figures)
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@dataclass(frozen=True)
class Model:
    slots: int
    cache_entries: int
    base_latency: float
    token_seconds: float


class Replica:
    """One inference server: its slots, its queue, its prefix cache and its counts."""

    def __init__(self, model: Model):
        self.model = model
        self.cache: OrderedDict[bytes, None] = OrderedDict()
        self.queue: deque[tuple[asyncio.Transport, dict]] = deque()
        self.busy = 0
        self.stats = Stats()
        self.loop = asyncio.get_running_loop()

    def arrived(self, transport: asyncio.Transport, body: dict) -> None:
        if self.stats.first == 0.0:
            self.stats.first = time.time()
        self.stats.requests += 1
        if self.busy >= self.model.slots:
            self.queue.append((transport, body))
        else:
            self.start(transport, body)

    def start(self, transport: asyncio.Transport, body: dict) -> None:
        self.busy += 1
        self.stats.peak = max(self.stats.peak, self.busy)
        key, shared, total = prefix_of(body)
        cached = shared if key is not None and self.looked_up(key) else 0
        prefill = (total - cached) * self.model.token_seconds
        stats = self.stats
        stats.hits += cached > 0
        stats.prompt_tokens += total
        stats.cached_tokens += cached
        stats.prefilled_tokens += total - cached
        now = self.loop.time()
        if key is not None and not cached:
            self.loop.call_at(now + prefill, self.remember, key)
        due = now + prefill + self.model.base_latency
        answer = answer_bytes(total, cached)
        self.loop.call_at(due - APPROACH, self.loop.call_at, due, self.answer, transport, answer, due)

    def looked_up(self, key: bytes) -> bool:
        if key in self.cache:
            self.cache.move_to_end(key)
            return True
        return False

    def remember(self, key: bytes) -> None:
        self.cache[key] = None
        self.cache.move_to_end(key)
        while len(self.cache) > self.model.cache_entries:
            self.cache.popitem(last=False)

    def answer(self, transport: asyncio.Transport, answer: bytes, due: float) -> None:
        self.busy -= 1
        self.stats.last = time.time()
        self.stats.lateness_seconds += self.loop.time() - due
        if not transport.is_closing():
            transport.write(answer)
        if self.queue:
            self.start(*self.queue.popleft())


class Connection(asyncio.Protocol):
    def __init__(self, replica: Replica):
        self.replica = replica
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length = content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            payload = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            if head.startswith(b"get /stats"):
                self.transport.write(self.replica.stats.response())
            else:
                self.replica.arrived(self.transport, orjson.loads(payload))


async def serve(ports: list[int], model: Model) -> None:
    servers = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        replica = Replica(model)
        servers.append(
            await asyncio.get_running_loop().create_server(
                lambda replica=replica: Connection(replica), sock=sock, backlog=4096
            )
        )
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated: one replica on each")
    parser.add_argument("--slots", type=int, default=32, help="requests a replica runs at once; more wait")
    parser.add_argument("--cache-entries", type=int, default=32, help="prefixes a replica's LRU keeps")
    parser.add_argument("--base-latency", type=float, default=0.02, help="seconds of every answer (its decode)")
    parser.add_argument("--token-seconds", type=float, default=0.0005, help="seconds per prefilled token")
    args = parser.parse_args()
    model = Model(args.slots, args.cache_entries, args.base_latency, args.token_seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with asyncio.Runner(loop_factory=exact_timers_loop) as runner:
            runner.run(serve([int(p) for p in args.ports.split(",")], model))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
