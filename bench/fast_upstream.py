"""A lean OpenAI-compatible upstream for benchmarks: raw asyncio HTTP/1.1, several processes on one port.

    python bench/fast_upstream.py --port 9000 [--processes 2] [--latency 0.2] [--capacity 256]
        [--reject-over-capacity [--reject-retry-after 1]] [--chaos 500=0.05,429=0.05,reset=0.02,hang=0.01 --seed 1]

Each process accepts on the same port (SO_REUSEPORT) and answers every POST with one fixed chat
completion (with `usage`), after `latency` seconds. With `--capacity`, each process serves that many
requests at once and queues the rest, like an inference server's running batch, or with
`--reject-over-capacity` answers the rest 429 at once, like a hosted API's concurrency limit. With
`--chaos`, a seeded share of requests is answered 500, or 429 with Retry-After: 1, has its
connection reset, or is never answered (a hang, until the client gives up). `GET /stats` answers
the process's request count, first arrival, last answer and peak concurrency (use one process to
read exact figures). It parses only what HTTP/1.1 keep-alive needs, so it is much faster than the
gateway it measures and never the bottleneck of a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time
from collections import deque

import orjson

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


def refusal(status: bytes, extra: bytes = b"") -> bytes:
    body = b'{"error": {"message": "mock refusal", "type": "mock_error", "code": null}}'
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


FAULT_ANSWERS = {
    "500": refusal(b"500 Internal Server Error"),
    "429": refusal(b"429 Too Many Requests", b"Retry-After: 1\r\n"),
}
FAULTS = ("500", "429", "reset", "hang")


# Linux lets a sleep of t seconds end up to t/1000 late (timer slack): after a quiet 100 ms between
# rounds, the first answer of each round came 0.4 ms late. Each answer is timed to APPROACH before
# it is due, then to its due time, so the last sleep before an answer is at most this short.
APPROACH = 0.002


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.faults = 0  # requests met with chaos
        self.rejected = 0  # requests refused over capacity
        self.first = 0.0
        self.last = 0.0
        self.busy = 0
        self.peak = 0
        self.turnarounds = 0  # requests that followed an answer on the same connection
        self.turnaround_seconds = 0.0  # their total time from our answer to the client's next request
        self.delayed = 0  # answers that waited `latency`
        self.lateness_seconds = 0.0  # their total time past it: how exact this mock's latency is

    def response(self) -> bytes:
        mean = self.turnaround_seconds / self.turnarounds if self.turnarounds else 0.0
        late = self.lateness_seconds / self.delayed if self.delayed else 0.0
        body = orjson.dumps(
            {
                "requests": self.requests,
                "faults": self.faults,
                "rejected": self.rejected,
                "first": self.first,
                "last": self.last,
                "peak": self.peak,
                "mean_turnaround_ms": round(mean * 1000, 3),
                "mean_lateness_ms": round(late * 1000, 3),
            }
        )
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Upstream:
    """One process's state: the latency, the room for requests at once, and who waits for room."""

    def __init__(
        self,
        latency: float,
        capacity: int | None,
        reject: bool = False,
        chaos: dict[str, float] | None = None,
        seed: int = 0,
        reject_retry_after: str | None = None,
    ):
        self.latency, self.capacity, self.reject = latency, capacity, reject
        asked = b"Retry-After: %s\r\n" % reject_retry_after.encode() if reject_retry_after else b""
        self.over_capacity = refusal(b"429 Too Many Requests", asked)
        self.chaos = chaos or {}
        self.draw = random.Random(seed).random
        self.stats = Stats()
        self.queue: deque[asyncio.Transport] = deque()
        self.loop = asyncio.get_running_loop()

    def arrived(self, transport: asyncio.Transport, answered_at: float) -> None:
        stats = self.stats
        stats.requests += 1
        now = time.time()
        if stats.first == 0.0:
            stats.first = now
        if answered_at:
            stats.turnarounds += 1
            stats.turnaround_seconds += now - answered_at
        if self.chaos and self.fault(transport):
            return
        if self.capacity is not None and stats.busy >= self.capacity:
            if self.reject:
                stats.rejected += 1
                transport.write(self.over_capacity)
                return
            self.queue.append(transport)
            return
        self.start(transport)

    def fault(self, transport: asyncio.Transport) -> bool:
        """Meet this request with chaos, if its draw says so."""
        draw = self.draw()
        for kind in FAULTS:
            draw -= self.chaos.get(kind, 0.0)
            if draw < 0:
                break
        else:
            return False
        self.stats.faults += 1
        if kind == "reset":  # a TCP reset, as from a crashing server
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif kind != "hang":  # a hang never answers: the client gives up and closes
            transport.write(FAULT_ANSWERS[kind])
        return True

    def start(self, transport: asyncio.Transport) -> None:
        self.stats.busy += 1
        self.stats.peak = max(self.stats.peak, self.stats.busy)
        if self.latency:
            due = self.loop.time() + self.latency
            self.loop.call_at(
                due - APPROACH, self.loop.call_at, due, self.answer, transport, time.time() + self.latency
            )
        else:
            self.answer(transport)

    def answer(self, transport: asyncio.Transport, due: float = 0.0) -> None:
        self.stats.busy -= 1
        self.stats.last = time.time()
        if due:
            self.stats.delayed += 1
            self.stats.lateness_seconds += self.stats.last - due
        if not transport.is_closing():
            transport.write(RESPONSE)
            transport.get_protocol().answered_at = self.stats.last
        if self.queue:
            self.start(self.queue.popleft())


def content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    stop = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : stop if stop > 0 else None])


class Connection(asyncio.Protocol):
    def __init__(self, upstream: Upstream):
        self.upstream = upstream
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answered_at = 0.0  # when this connection last got an answer

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
            del self.buffer[: end + 4 + length]
            if head.startswith(b"get /stats"):
                self.transport.write(self.upstream.stats.response())
            else:
                self.upstream.arrived(self.transport, self.answered_at)


async def serve(
    port: int,
    latency: float,
    capacity: int | None,
    reject: bool = False,
    chaos: dict[str, float] | None = None,
    seed: int = 0,
    reject_retry_after: str | None = None,
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    upstream = Upstream(latency, capacity, reject, chaos, seed, reject_retry_after)
    server = await asyncio.get_running_loop().create_server(lambda: Connection(upstream), sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


def exact_timers_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire on time: epoll waits in whole milliseconds, rounded up, so an
    answer due in 200 ms came up to 1 ms late (0.3 ms on average, measured), a delay the benchmark
    would charge to the client. select() waits to the microsecond; a benchmark opens a few hundred
    connections, well within its 1024 descriptors. (Answers are also timed in two steps, APPROACH.)"""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--capacity", type=int)
    parser.add_argument("--reject-over-capacity", action="store_true")
    parser.add_argument("--reject-retry-after", help="the Retry-After of those refusals (none if not given)")
    parser.add_argument(
        "--chaos", default="", help="shares of requests that fail: 500=0.05,429=0.05,reset=0.02,hang=0.01"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chaos = {kind: float(share) for kind, share in (item.split("=") for item in args.chaos.split(",") if item)}
    if set(chaos) - set(FAULTS):
        parser.error(f"--chaos knows {', '.join(FAULTS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the parent's finally stops its children
    children = []
    index = 0  # this process's place among those sharing the port: each draws its own chaos
    for number in range(1, args.processes):
        pid = os.fork()
        if pid == 0:
            children, index = [], number
            break
        children.append(pid)
    try:
        with asyncio.Runner(loop_factory=exact_timers_loop if args.latency else None) as runner:
            runner.run(
                serve(
                    args.port,
                    args.latency,
                    args.capacity,
                    args.reject_over_capacity,
                    chaos,
                    args.seed + index,
                    args.reject_retry_after,
                )
            )
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            os.kill(pid, 15)


if __name__ == "__main__":
    main()
