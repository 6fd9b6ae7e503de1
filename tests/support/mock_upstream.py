"""An OpenAI-compatible upstream for tests, run as its own process.

Its answers depend on the request, so a test can tell that each output line carries the
answer to its own request. Directives inside the text steer it:

    [status:400]   answer that HTTP status (with an OpenAI-style error body) every time
    [flaky:N]      answer 500 to the first N attempts of this exact text, then succeed
    [429:N]        answer 429 with Retry-After: 0 to the first N attempts, then succeed
    [sleep:S]      wait S seconds before answering
    [garbage:N]    answer 200 with an HTML page (not JSON) to the first N attempts, then succeed
    [wait:S]       with [429:N]: the 429 asks for Retry-After: S seconds (default 0)
    [spent:S]      with [429:N]: the 429 says the rate window is spent instead (x-ratelimit-remaining-requests: 0,
                   x-ratelimit-reset-requests: Ss), with no Retry-After unless [wait:S] asks for one
    [cut:1]        asked to stream: open the stream (200, text/event-stream) and end it before any event
    [cached:N]     report N of the prompt's tokens (its words) as served by a prefix cache: usage
                   prompt_tokens_details.cached_tokens (input_tokens_details for responses)

Options model a server with limited room: --capacity N serves N requests at once and queues the
rest (like an inference server's batch), or with --reject-over-capacity answers them 429.
--fail-status S answers S to everything (a broken server). --ignore-stream answers `stream: true`
with one whole JSON object, as some servers do. --chaos "500=0.05,429=0.05,reset=0.02,
hang=0.01" (with --seed) makes sporadic faults: a share of attempts answers 500, answers 429 with
Retry-After: 1, resets the connection, or hangs until the client gives up. Which attempt meets which
fault depends only on the seed, the text and the attempt's number, so a run is reproducible
whatever order requests arrive in.

A chat request with `stream: true` is answered as server-sent events, one chunk per word of the
answer. GET /v1/models lists MODELS.

Every request is appended to the --log file as one JSON line: {"text", "status", "t"}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import socket
import struct
import time
from collections import Counter

import orjson
from aiohttp import web

GARBAGE = -200  # a 200 whose body is not JSON
MODELS = ("mock-chat", "mock-embed")
FAULTS = ("500", "429", "reset", "hang")
DIRECTIVE = re.compile(r"\[(status|flaky|429|sleep|garbage|wait|spent|cut|cached):([0-9.]+)\]")


def request_text(endpoint: str, body: dict) -> str:
    if endpoint == "chat/completions":
        messages = body.get("messages") or [{}]
        content = messages[-1].get("content", "")
        return content if isinstance(content, str) else orjson.dumps(content).decode()
    if endpoint in ("embeddings", "responses", "images/generations"):
        value = body.get("input", body.get("prompt", ""))
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    return ""


def answer(endpoint: str, body: dict, text: str) -> dict:
    model = body.get("model", "unknown")
    words = len(text.split()) or 1
    cached = min(words, sum(int(float(v)) for k, v in DIRECTIVE.findall(text) if k == "cached"))
    if endpoint == "chat/completions":
        return {
            "id": "chatcmpl-" + hashlib.md5(text.encode()).hexdigest()[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"echo: {text}"}}
            ],
            "usage": {
                "prompt_tokens": words,
                "completion_tokens": words + 1,
                "total_tokens": 2 * words + 1,
                **({"prompt_tokens_details": {"cached_tokens": cached}} if cached else {}),
            },
        }
    if endpoint == "embeddings":
        digest = hashlib.sha256(text.encode()).digest()
        return {
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [b / 255 for b in digest[:8]]}],
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
    if endpoint == "responses":
        return {
            "id": "resp_" + hashlib.md5(text.encode()).hexdigest()[:12],
            "object": "response",
            "model": model,
            "status": "completed",
            "output_text": f"echo: {text}",
            "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"echo: {text}"}]}
            ],
            "usage": {
                "input_tokens": words,
                "output_tokens": words + 1,
                "total_tokens": 2 * words + 1,
                **({"input_tokens_details": {"cached_tokens": cached}} if cached else {}),
            },
        }
    return {
        "created": int(time.time()),
        "data": [{"url": f"https://images.invalid/{hashlib.md5(text.encode()).hexdigest()}"}],
    }


class MockUpstream:
    def __init__(
        self,
        log_path: str | None,
        latency: float,
        capacity: int | None = None,
        reject_over_capacity: bool = False,
        fail_status: int | None = None,
        ignore_stream: bool = False,
        chaos: dict[str, float] | None = None,
        seed: int = 0,
    ):
        self.ignore_stream = ignore_stream
        self.attempts: Counter[str] = Counter()
        self.chaos = chaos or {}
        self.seed = seed
        self.latency = latency
        # held open for the mock's lifetime, closed in close()
        self.log = open(log_path, "ab", buffering=0) if log_path else None  # noqa: SIM115
        self.room = asyncio.Semaphore(capacity) if capacity else None
        self.reject_over_capacity = reject_over_capacity
        self.fail_status = fail_status
        self.in_flight = self.peak = self.rejected = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.room is None:
            return await self.serve(request)
        if self.reject_over_capacity and self.room.locked():
            self.rejected += 1
            return web.json_response({"error": {"message": "over capacity", "code": "mock_429"}}, status=429)
        async with self.room:
            return await self.serve(request)

    async def serve(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.answer(request)
        finally:
            self.in_flight -= 1

    async def answer(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        body = orjson.loads(await request.read())
        text = request_text(endpoint, body)
        self.attempts[text] += 1
        fault = self.fault(text)
        status, headers = (self.fail_status, {}) if self.fail_status else self.decide(text)
        if fault in ("500", "429"):
            status, headers = int(fault), ({"Retry-After": "1"} if fault == "429" else {})
        if self.log:
            self.log.write(
                orjson.dumps(
                    {
                        "text": text,
                        "status": fault if fault in ("reset", "hang") else status,
                        "t": time.time(),
                        "auth": request.headers.get("Authorization"),
                    }
                )
                + b"\n"
            )
        if fault == "reset":
            return reset(request)
        if fault == "hang":
            return await hang(request)
        delay = self.latency + sum(float(v) for k, v in DIRECTIVE.findall(text) if k == "sleep")
        if delay:
            await asyncio.sleep(delay)
        if status == GARBAGE:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        if status != 200:
            payload = {"error": {"message": f"mock says {status}", "type": "mock_error", "code": f"mock_{status}"}}
            return web.json_response(payload, status=status, headers=headers)
        if body.get("stream") is True and not self.ignore_stream:
            cut = any(kind == "cut" for kind, _ in DIRECTIVE.findall(text))
            return await stream(request, endpoint, None if cut else answer(endpoint, body, text))
        return web.Response(
            body=orjson.dumps(answer(endpoint, body, text)),
            content_type="application/json",
            headers={"x-request-id": "req_" + hashlib.md5(text.encode()).hexdigest()[:16]},
        )

    async def close(self, app: web.Application) -> None:
        if self.log:
            self.log.close()

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in MODELS]}
        )

    def fault(self, text: str) -> str | None:
        """The chaos this attempt meets, if any: a draw from the seed, the text and the attempt's number."""
        if not self.chaos:
            return None
        digest = hashlib.blake2b(f"{self.seed}:{self.attempts[text]}:{text}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        for kind in FAULTS:
            draw -= self.chaos.get(kind, 0.0)
            if draw < 0:
                return kind
        return None

    def decide(self, text: str) -> tuple[int, dict]:
        seen = self.attempts[text]
        for kind, value in DIRECTIVE.findall(text):
            if kind == "status":
                return int(value), {}
            if kind == "flaky" and seen <= int(value):
                return 500, {}
            if kind == "429" and seen <= int(value):
                given = dict(DIRECTIVE.findall(text))
                if "spent" in given:
                    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{given['spent']}s"}
                    return 429, spent | ({"Retry-After": given["wait"]} if "wait" in given else {})
                return 429, {"Retry-After": given.get("wait", "0")}
            if kind == "garbage" and seen <= int(value):
                return GARBAGE, {}
        return 200, {}


def reset(request: web.Request) -> web.Response:
    """Drop the connection with a TCP reset (linger 0), as a crashing server or a proxy does."""
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()
    return web.Response(status=500)  # never reaches the client: its connection is gone


async def hang(request: web.Request) -> web.Response:
    """Never answer; stop waiting once the client has given up and closed the connection."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.05)
    return web.Response(status=504)


def parse_chaos(text: str | None) -> dict[str, float]:
    """ "500=0.05,reset=0.02" → {"500": 0.05, "reset": 0.02}"""
    pairs = (item.split("=") for item in (text or "").split(",") if item)
    chaos = {kind: float(share) for kind, share in pairs}
    unknown = set(chaos) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
    return chaos


async def stream(request: web.Request, endpoint: str, whole: dict | None) -> web.StreamResponse:
    """`whole` told as server-sent events, a piece per word: chat chunks, or the responses API's events.
    None opens the stream and ends it at once, as a server that broke down would."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    if whole is not None:
        events = _response_events(whole) if endpoint == "responses" else _chat_events(whole)
        await response.write(b"".join(events))
    await response.write_eof()
    return response


def _chat_events(whole: dict) -> list[bytes]:
    head = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"], "model": whole["model"]}
    events = []
    for i, word in enumerate(whole["choices"][0]["message"]["content"].split(" ")):
        delta = {"content": word if i == 0 else " " + word, **({"role": "assistant"} if i == 0 else {})}
        events.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [b"data: " + orjson.dumps(event) + b"\n\n" for event in events] + [b"data: [DONE]\n\n"]


def _response_events(whole: dict) -> list[bytes]:
    events = [("response.created", {"response": {**whole, "status": "in_progress", "output": []}})]
    for i, word in enumerate(whole["output_text"].split(" ")):
        events.append(
            (
                "response.output_text.delta",
                {"output_index": 0, "content_index": 0, "delta": word if i == 0 else " " + word},
            )
        )
    events.append(("response.completed", {"response": whole}))
    return [f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n" for name, data in events]


MOCK = web.AppKey("mock", MockUpstream)  # the state behind an app, for tests that run it in process


def make_app(
    log_path: str | None = None,
    latency: float = 0.0,
    capacity: int | None = None,
    reject_over_capacity: bool = False,
    fail_status: int | None = None,
    ignore_stream: bool = False,
    chaos: dict[str, float] | None = None,
    seed: int = 0,
) -> web.Application:
    mock = MockUpstream(log_path, latency, capacity, reject_over_capacity, fail_status, ignore_stream, chaos, seed)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[MOCK] = mock
    app.router.add_post("/v1/{endpoint:.+}", mock.handle)
    app.router.add_get("/v1/models", mock.models)
    app.on_cleanup.append(mock.close)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--capacity", type=int)
    parser.add_argument("--reject-over-capacity", action="store_true")
    parser.add_argument("--fail-status", type=int)
    parser.add_argument("--ignore-stream", action="store_true")
    parser.add_argument("--chaos", help='shares of attempts that fail, e.g. "500=0.05,429=0.05,reset=0.02,hang=0.01"')
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    app = make_app(
        args.log,
        args.latency,
        args.capacity,
        args.reject_over_capacity,
        args.fail_status,
        args.ignore_stream,
        parse_chaos(args.chaos),
        args.seed,
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
