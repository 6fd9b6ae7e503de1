"""An OpenAI-compatible HTTP upstream (vLLM, SGLang, Ollama, llama.cpp, hosted APIs), over aiohttp."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import orjson

from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy, is_retryable_status, parse_retry_after
from batchgate.errors import Abandoned
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import RetryGate, Stream


# A listing is a courtesy: an upstream that is slow to give one is left out rather than waited for.
MODELS_TIMEOUT = aiohttp.ClientTimeout(total=5)


class HttpUpstream:
    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name
        self._config = config
        self._policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds or settings.request_timeout_seconds)
        self._slots = asyncio.Semaphore(config.max_concurrency) if config.max_concurrency else None
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"

    def url_for(self, endpoint: str) -> str:
        # base_url is the part before /chat/completions, so drop the endpoint's own /v1.
        return self._config.base_url + endpoint.removeprefix("/v1")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        url, payload = self.url_for(endpoint), orjson.dumps(body)
        attempt = 0
        while True:
            attempt += 1
            outcome, retry_after = await self._attempt(url, payload)
            retryable = outcome.error_code is not None or is_retryable_status(outcome.status_code)
            if outcome.ok or not retryable or not self._policy.should_retry(attempt):
                return outcome
            await asyncio.sleep(self._policy.delay(attempt, random.random(), retry_after))
            if gate is not None and not await gate():
                raise Abandoned(f"a retry to {self.name!r} was abandoned: its run stopped")

    async def _attempt(self, url: str, payload: bytes) -> tuple[Outcome, float | None]:
        try:
            if self._slots is None:
                return await self._post(url, payload)
            async with self._slots:
                return await self._post(url, payload)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return self._failure(exc), None

    def _failure(self, exc: Exception) -> Outcome:
        if isinstance(exc, asyncio.TimeoutError):
            return Outcome(error_code="timeout", error_message=f"The upstream {self.name!r} did not answer in time.")
        return Outcome(error_code="upstream_unreachable",
                       error_message=f"Could not reach upstream {self.name!r}: {exc.__class__.__name__}: {exc}")

    async def _post(self, url: str, payload: bytes) -> tuple[Outcome, float | None]:
        async with self._client().post(url, data=payload, headers=self._headers) as response:
            return await self._answer(response)

    async def _answer(self, response: aiohttp.ClientResponse) -> tuple[Outcome, float | None]:
        raw = await response.read()
        request_id = response.headers.get("x-request-id")
        retry_after = parse_retry_after(dict(response.headers), time.time())
        try:
            return Outcome(status_code=response.status, body=orjson.loads(raw), request_id=request_id), retry_after
        except orjson.JSONDecodeError:
            pass
        text = raw.decode("utf-8", "replace")[:2000]
        body = {"error": {"message": text, "type": "upstream_error", "code": "invalid_upstream_response"}}
        if not 200 <= response.status < 300:
            return Outcome(status_code=response.status, body=body, request_id=request_id), retry_after
        # A 2xx that is not JSON is no answer (a proxy's page, a cut body): an error, and worth a retry.
        return Outcome(status_code=response.status, body=body, request_id=request_id,
                       error_code="invalid_upstream_response",
                       error_message=f"The upstream answered HTTP {response.status} with a body that is not "
                                     f"JSON."), retry_after

    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        """Relay the upstream's server-sent events as they come; failures before the first byte are retried."""
        url, payload = self.url_for(endpoint), orjson.dumps({**body, "stream": True})
        attempt = 0
        while True:
            attempt += 1
            if self._slots is not None:
                await self._slots.acquire()  # held until the stream ends, like any request in flight
            try:
                response = await self._client().post(url, data=payload, headers=self._headers)
                if 200 <= response.status < 300:
                    return Stream(_relay(response, self._slots))
                async with response:
                    outcome, retry_after = await self._answer(response)
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                outcome, retry_after = self._failure(exc), None
            if self._slots is not None:
                self._slots.release()
            retryable = outcome.error_code is not None or is_retryable_status(outcome.status_code)
            if not retryable or not self._policy.should_retry(attempt):
                return outcome
            await asyncio.sleep(self._policy.delay(attempt, random.random(), retry_after))

    async def models(self) -> list[str]:
        """The ids the upstream's GET /models lists; none if it does not answer one."""
        try:
            async with self._client().get(self.url_for("/v1/models"), headers=self._headers,
                                          timeout=MODELS_TIMEOUT) as response:
                listing = orjson.loads(await response.read()) if response.status == 200 else {}
        except (asyncio.TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError):
            return []
        data = listing.get("data") if isinstance(listing, dict) else None
        return [m["id"] for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _relay(response: aiohttp.ClientResponse, slots: asyncio.Semaphore | None):
    try:
        async for piece in response.content.iter_any():
            yield piece
    finally:
        response.release()
        if slots is not None:
            slots.release()
