"""The `local` upstream kind: built-in models answering inside the gateway, off the event loop.

Each model gets its own thread pool as wide as the engine's parallelism, so a long chat never
holds up embeddings and the event loop only waits. Engines load on first use and stay loaded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

import orjson

from batchgate.domain.results import Outcome
from batchgate.domain.throttle import Asked
from batchgate.errors import EngineMissing, InvalidRequest
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import NO_CACHE, PrefixCache, RetryGate, Stream
from batchgate.upstream.engines import DEFAULTS, ENGINES, Engine
from batchgate.upstream.engines.smollm import SmolLMEngine

# What `serve` runs when no [[upstreams]] are configured.
DEFAULT_LOCAL = UpstreamConfig(name="local", kind="local", models=tuple(ENGINES))
_END = object()
CHAT_ENDPOINTS = SmolLMEngine.endpoints
log = logging.getLogger("batchgate.local")


class LocalUpstream:
    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name
        self._settings = settings
        self._engines: dict[str, tuple[Engine, ThreadPoolExecutor]] = {}

    async def models(self) -> list[str]:
        return list(ENGINES)

    def prefix_cache(self, endpoint: str) -> PrefixCache:
        """The chat model is llama.cpp, a prompt cache per slot; the embedding model keeps none."""
        return PrefixCache(self._settings.local_chat_slots) if endpoint in CHAT_ENDPOINTS else NO_CACHE

    def _engine(self, endpoint: str, model: str) -> tuple[Engine, ThreadPoolExecutor] | Outcome:
        if model not in self._engines:
            factory = ENGINES.get(model)
            if factory is None:
                return not_served(endpoint, model, f"{model!r} is not a built-in local model")
            engine = factory(model, self._settings)
            self._engines[model] = engine, ThreadPoolExecutor(engine.parallel, thread_name_prefix=f"local-{model}")
        engine, pool = self._engines[model]
        if endpoint not in engine.endpoints:
            return not_served(endpoint, model, f"the local model {model!r} does not serve {endpoint}")
        return engine, pool

    async def attempt(self, endpoint: str, body: dict, payload: bytes) -> tuple[Outcome, Asked | None]:
        """One answer from the engine (the body is used, the payload is not); an engine never asks us to wait."""
        found = self._engine(endpoint, body["model"])
        if isinstance(found, Outcome):
            return found, None
        engine, pool = found
        try:
            answer = await asyncio.get_running_loop().run_in_executor(pool, engine.answer, endpoint, body)
        except (InvalidRequest, EngineMissing) as exc:
            return refusal(exc), None
        return Outcome(status_code=200, body=answer), None

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """One attempt: what fails in process would fail again, so nothing is retried."""
        return (await self.attempt(endpoint, body, b""))[0]

    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        found = self._engine(endpoint, body["model"])
        if isinstance(found, Outcome):
            return found
        engine, pool = found
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()  # set when the reader stops: generation stops at the next token

        def emit(chunk: dict) -> bool:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            return not gone.is_set()

        work = loop.run_in_executor(pool, engine.stream, endpoint, body, emit)
        work.add_done_callback(lambda _: chunks.put_nowait(_END))
        first = await chunks.get()
        if first is _END:
            try:
                work.result()
            except (InvalidRequest, EngineMissing) as exc:
                return refusal(exc)
            return Outcome(error_code="invalid_upstream_response", error_message="The local model sent nothing.")
        return Stream(_events(first, chunks, work, gone))

    async def close(self) -> None:
        for _, pool in self._engines.values():
            pool.shutdown(wait=False, cancel_futures=True)


async def _events(
    first: dict, chunks: asyncio.Queue, work: asyncio.Future, gone: threading.Event
) -> AsyncGenerator[bytes, None]:
    try:
        chunk = first
        while chunk is not _END:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            chunk = await chunks.get()
        try:
            await work
        except Exception as exc:  # the status line is gone already: say it in the stream, as OpenAI does
            log.exception("the local model failed mid-stream")
            error = {
                "message": f"The local model failed mid-answer: {exc}",
                "type": "server_error",
                "param": None,
                "code": "local_model_error",
            }
            yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
            return
        yield b"data: [DONE]\n\n"
    finally:
        gone.set()


def refusal(exc: InvalidRequest | EngineMissing) -> Outcome:
    if isinstance(exc, EngineMissing):
        return Outcome(error_code=exc.code, error_message=exc.message)
    return Outcome(status_code=exc.status, body=exc.to_wire())


def not_served(endpoint: str, model: str, why: str) -> Outcome:
    default = DEFAULTS.get(endpoint)
    hint = (
        f"use {default!r} (or 'auto')"
        if default
        else "there is no local model for it, so name a model an [[upstreams]] table serves"
    )
    return Outcome(error_code="model_not_found", error_message=f"{why}; on {endpoint} {hint}.")
