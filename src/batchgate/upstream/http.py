"""An OpenAI-compatible HTTP upstream (vLLM, SGLang, Ollama, llama.cpp, hosted APIs), over aiohttp."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
from yarl import URL

from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy, parse_retry_after
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import RetryGate, send_with_retries


class HttpUpstream:
    def __init__(self, config: UpstreamConfig, settings: Settings):
        self.name = config.name
        self._config = config
        self._policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds or settings.request_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"

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
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        """On its own, with retries; the Router goes through `attempt` instead, behind its admission."""
        payload = orjson.dumps(body)
        return await send_with_retries(lambda: self.attempt(endpoint, payload), self._policy, gate, self.name)

    async def attempt(self, endpoint: str, payload: bytes) -> tuple[Outcome, float | None]:
        """One try, no retry: the outcome and the Retry-After the upstream asked for, if any."""
        try:
            return await self._post(self._url(endpoint), payload)
        except asyncio.TimeoutError:
            return Outcome(error_code="timeout", error_message=f"The upstream {self.name!r} did not answer in time."), None
        except aiohttp.ClientError as exc:
            return Outcome(error_code="upstream_unreachable",
                           error_message=f"Could not reach upstream {self.name!r}: {exc.__class__.__name__}: {exc}"), None

    async def _post(self, url: URL, payload: bytes) -> tuple[Outcome, float | None]:
        async with self._client().post(url, data=payload, headers=self._headers) as response:
            raw = await response.read()
            request_id = response.headers.get("x-request-id")
            # Only a refusal's Retry-After matters; skipping the header copy keeps the common 2xx path lean.
            retry_after = None if response.status < 400 else parse_retry_after(dict(response.headers), time.time())
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
