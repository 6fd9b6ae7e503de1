"""An OpenAI-compatible upstream for tests, run as its own process.

Its answers depend on the request, so a test can tell that each output line carries the
answer to its own request. Directives inside the text steer it:

    [status:400]   answer that HTTP status (with an OpenAI-style error body) every time
    [flaky:N]      answer 500 to the first N attempts of this exact text, then succeed
    [429:N]        answer 429 with Retry-After: 0 to the first N attempts, then succeed
    [sleep:S]      wait S seconds before answering
    [garbage:N]    answer 200 with an HTML page (not JSON) to the first N attempts, then succeed
    [wait:S]       with [429:N]: the 429 asks for Retry-After: S seconds (default 0)

Options model a server with limited room: --capacity N serves N requests at once and queues the
rest (like an inference server's batch), or with --reject-over-capacity answers them 429.
--fail-status S answers S to everything (a broken server). --ignore-stream answers `stream: true`
with one whole JSON object, as some servers do.

A chat request with `stream: true` is answered as server-sent events, one chunk per word of the
answer. GET /v1/models lists MODELS.

Every request is appended to the --log file as one JSON line: {"text", "status", "t"}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from collections import Counter

import orjson
from aiohttp import web

GARBAGE = -200  # a 200 whose body is not JSON
MODELS = ("mock-chat", "mock-embed")
DIRECTIVE = re.compile(r"\[(status|flaky|429|sleep|garbage|wait):([0-9.]+)\]")


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
    if endpoint == "chat/completions":
        return {"id": "chatcmpl-" + hashlib.md5(text.encode()).hexdigest()[:12], "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"echo: {text}"}}],
                "usage": {"prompt_tokens": words, "completion_tokens": words + 1, "total_tokens": 2 * words + 1}}
    if endpoint == "embeddings":
        digest = hashlib.sha256(text.encode()).digest()
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [b / 255 for b in digest[:8]]}],
                "usage": {"prompt_tokens": words, "total_tokens": words}}
    if endpoint == "responses":
        return {"id": "resp_" + hashlib.md5(text.encode()).hexdigest()[:12], "object": "response", "model": model,
                "status": "completed", "output_text": f"echo: {text}",
                "output": [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": f"echo: {text}"}]}],
                "usage": {"input_tokens": words, "output_tokens": words + 1, "total_tokens": 2 * words + 1}}
    return {"created": int(time.time()), "data": [{"url": f"https://images.invalid/{hashlib.md5(text.encode()).hexdigest()}"}]}


class MockUpstream:
    def __init__(self, log_path: str | None, latency: float, capacity: int | None = None,
                 reject_over_capacity: bool = False, fail_status: int | None = None, ignore_stream: bool = False):
        self.ignore_stream = ignore_stream
        self.attempts: Counter[str] = Counter()
        self.latency = latency
        self.log = open(log_path, "ab", buffering=0) if log_path else None
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
        status, headers = (self.fail_status, {}) if self.fail_status else self.decide(text)
        if self.log:
            self.log.write(orjson.dumps({"text": text, "status": status, "t": time.time(),
                                         "auth": request.headers.get("Authorization")}) + b"\n")
        delay = self.latency + sum(float(v) for k, v in DIRECTIVE.findall(text) if k == "sleep")
        if delay:
            await asyncio.sleep(delay)
        if status == GARBAGE:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        if status != 200:
            payload = {"error": {"message": f"mock says {status}", "type": "mock_error", "code": f"mock_{status}"}}
            return web.json_response(payload, status=status, headers=headers)
        if body.get("stream") is True and not self.ignore_stream:
            return await stream(request, answer(endpoint, body, text))
        return web.Response(body=orjson.dumps(answer(endpoint, body, text)), content_type="application/json",
                            headers={"x-request-id": "req_" + hashlib.md5(text.encode()).hexdigest()[:16]})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                               "owned_by": "mock"} for m in MODELS]})

    def decide(self, text: str) -> tuple[int, dict]:
        seen = self.attempts[text]
        for kind, value in DIRECTIVE.findall(text):
            if kind == "status":
                return int(value), {}
            if kind == "flaky" and seen <= int(value):
                return 500, {}
            if kind == "429" and seen <= int(value):
                wait = next((v for k, v in DIRECTIVE.findall(text) if k == "wait"), "0")
                return 429, {"Retry-After": wait}
            if kind == "garbage" and seen <= int(value):
                return GARBAGE, {}
        return 200, {}


async def stream(request: web.Request, whole: dict) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    words = whole["choices"][0]["message"]["content"].split(" ")
    for i, word in enumerate(words):
        delta = {"content": word if i == 0 else " " + word, **({"role": "assistant"} if i == 0 else {})}
        chunk = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"],
                 "model": whole["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    last = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"], "model": whole["model"],
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    await response.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    return response


MOCK = web.AppKey("mock", MockUpstream)  # the state behind an app, for tests that run it in process


def make_app(log_path: str | None = None, latency: float = 0.0, capacity: int | None = None,
             reject_over_capacity: bool = False, fail_status: int | None = None,
             ignore_stream: bool = False) -> web.Application:
    mock = MockUpstream(log_path, latency, capacity, reject_over_capacity, fail_status, ignore_stream)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[MOCK] = mock
    app.router.add_post("/v1/{endpoint:.+}", mock.handle)
    app.router.add_get("/v1/models", mock.models)
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
    args = parser.parse_args()
    web.run_app(make_app(args.log, args.latency, args.capacity, args.reject_over_capacity, args.fail_status,
                         args.ignore_stream), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
