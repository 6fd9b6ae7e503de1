"""An OpenAI-compatible HTTP upstream (vLLM, SGLang, Ollama, llama.cpp, hosted APIs).

Whole answers (every batch line) go through the lean keep-alive client in http1.py; streamed
answers, relayed piece by piece to a client of the synchronous endpoints, go through aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import aiohttp
import orjson
from yarl import URL

from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy, parse_retry_after
from batchgate.domain.sse import answer_as_events, looks_like_events
from batchgate.domain.throttle import Asked, window_spent
from batchgate.errors import UpstreamFailure
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import SHARED_CACHE, PrefixCache, RetryGate, Stream, send_with_retries
from batchgate.upstream.http1 import Http1Pool, Origin

# A listing is a courtesy: an upstream that is slow to give one is left out rather than waited for,
# and a listing is kept a while, so clients polling GET /models do not reach every upstream each time.
MODELS_TIMEOUT = 5.0
MODELS_TTL = 30.0


class HttpUpstream:
    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name
        self._config = config
        self._policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        timeout = config.timeout_seconds or settings.request_timeout_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._pool = Http1Pool(Origin(config.base_url), self._headers, timeout)
        self._unnamed_reset = settings.rate_limit_pause_seconds  # a spent window that says no reset time
        self._clock = time.monotonic
        self._listing: tuple[float, list[str]] = (float("-inf"), [])  # (fetched at, names)

    def url_for(self, endpoint: str) -> str:
        # base_url is the part before /chat/completions, so drop the endpoint's own /v1.
        return self._config.base_url + endpoint.removeprefix("/v1")

    def _url(self, endpoint: str) -> URL:
        """The parsed URL of an endpoint, parsed once: aiohttp would parse a string on every request."""
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = URL(self.url_for(endpoint))
        return url

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """On its own, with retries; the Router goes through `attempt` instead, behind its door."""
        payload = orjson.dumps(body)

        async def once() -> tuple[Outcome, float | None]:
            outcome, asked = await self.attempt(endpoint, body, payload)
            return outcome, asked.retry_after if asked is not None else None

        return await send_with_retries(once, self._policy, gate, self.name)

    async def attempt(self, endpoint: str, body: dict, payload: bytes) -> tuple[Outcome, Asked | None]:
        """One try, no retry: the outcome and what the upstream asked of us (Retry-After, a spent rate window)."""
        try:
            answer = await self._pool.post(endpoint.removeprefix("/v1"), payload)
        except (TimeoutError, UpstreamFailure) as exc:
            return self._failure(exc), None
        outcome, retry_after = self._answer(answer.status, answer.headers, answer.body)
        spent_for = window_spent(answer.headers, self._unnamed_reset)
        if retry_after is None and spent_for is None:
            return outcome, None  # the common case: nothing asked, nothing allocated
        return outcome, Asked(retry_after, spent_for)

    def _failure(self, exc: Exception) -> Outcome:
        if isinstance(exc, asyncio.TimeoutError):
            return Outcome(error_code="timeout", error_message=f"The upstream {self.name!r} did not answer in time.")
        detail = exc.message if isinstance(exc, UpstreamFailure) else f"{exc.__class__.__name__}: {exc}"
        return Outcome(
            error_code="upstream_unreachable", error_message=f"Could not reach upstream {self.name!r}: {detail}"
        )

    def _answer(self, status: int, headers, raw: bytes) -> tuple[Outcome, float | None]:
        request_id = headers.get("x-request-id")
        # Only a refusal's Retry-After matters; skipping the header copy keeps the common 2xx path lean.
        retry_after = None if status < 400 else parse_retry_after(dict(headers), time.time())
        try:
            return Outcome(status_code=status, body=orjson.loads(raw), request_id=request_id), retry_after
        except orjson.JSONDecodeError:
            pass
        text = raw.decode("utf-8", "replace")[:2000]
        body = {"error": {"message": text, "type": "upstream_error", "code": "invalid_upstream_response"}}
        if not 200 <= status < 300:
            return Outcome(status_code=status, body=body, request_id=request_id), retry_after
        # A 2xx that is not JSON is no answer (a proxy's page, a cut body): an error, and worth a retry.
        return Outcome(
            status_code=status,
            body=body,
            request_id=request_id,
            error_code="invalid_upstream_response",
            error_message=f"The upstream answered HTTP {status} with a body that is not JSON.",
        ), retry_after

    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        """Relay the upstream's server-sent events as they come; failures before the first byte are retried."""
        payload = orjson.dumps({**body, "stream": True})
        return await send_with_retries(lambda: self._open(endpoint, payload), self._policy, None, self.name)

    async def _open(self, endpoint: str, payload: bytes) -> tuple[Outcome | Stream, float | None]:
        try:
            response = await self._client().post(self._url(endpoint), data=payload, headers=self._headers)
            if 200 <= response.status < 300 and response.content_type == "text/event-stream":
                return Stream(_relay(response)), None
            async with response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return self._failure(exc), None
        if 200 <= response.status < 300 and looks_like_events(raw):  # events under another content type
            return Stream(_replay(raw)), None
        return self._as_stream(endpoint, *self._answer(response.status, response.headers, raw))

    def _as_stream(
        self, endpoint: str, outcome: Outcome, retry_after: float | None
    ) -> tuple[Outcome | Stream, float | None]:
        """An upstream that ignored `stream: true` answered whole: a 2xx becomes the events of its stream."""
        if not outcome.ok:
            return outcome, retry_after
        events = answer_as_events(endpoint, outcome.body)
        if events is None:
            return Outcome(
                status_code=outcome.status_code,
                body=outcome.body,
                request_id=outcome.request_id,
                error_code="invalid_upstream_response",
                error_message=f"The upstream {self.name!r} was asked to stream and answered "
                f"neither events nor a {endpoint} answer.",
            ), retry_after
        return Stream(_replay(events)), None

    def prefix_cache(self, endpoint: str) -> PrefixCache:
        """Shared, as vLLM and SGLang keep it, unless the table gives the slots of a per-slot cache (llama.cpp)."""
        slots = self._config.prompt_cache_slots
        return SHARED_CACHE if slots is None else PrefixCache(slots)

    async def models(self) -> list[str]:
        """The ids the upstream's GET /models lists (none if it does not answer one), kept MODELS_TTL seconds."""
        fetched_at, names = self._listing
        if self._clock() - fetched_at >= MODELS_TTL:
            names = await self._fetch_models()
            self._listing = (self._clock(), names)
        return names

    async def _fetch_models(self) -> list[str]:
        try:
            answer = await self._pool.get("/models", MODELS_TIMEOUT)
            listing = orjson.loads(answer.body) if answer.status == 200 else {}
        except (TimeoutError, UpstreamFailure, orjson.JSONDecodeError):
            return []
        data = listing.get("data") if isinstance(listing, dict) else None
        return [m["id"] for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def close(self) -> None:
        self._pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _replay(events: bytes) -> AsyncGenerator[bytes, None]:
    yield events


async def _relay(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for piece in response.content.iter_any():
            yield piece
    finally:
        response.release()
