"""An HTTP upstream's model listing: read from its GET /models and kept a while."""

from __future__ import annotations

from aiohttp import web

from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.http import MODELS_TTL, HttpUpstream


async def serve_models(listings: list[dict]) -> tuple[web.AppRunner, int, list[int]]:
    """A server whose n-th GET /v1/models answers listings[n]; returns its runner, port and call count."""
    calls = [0]

    async def models(request: web.Request) -> web.Response:
        calls[0] += 1
        return web.json_response(listings[min(calls[0], len(listings)) - 1])

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1], calls


async def test_a_listing_is_fetched_once_per_ttl():
    runner, port, calls = await serve_models([{"data": [{"id": "a"}]}, {"data": [{"id": "a"}, {"id": "b"}]}])
    upstream = HttpUpstream(UpstreamConfig(name="u", base_url=f"http://127.0.0.1:{port}/v1"), Settings())
    now = [1000.0]
    upstream._clock = lambda: now[0]
    try:
        assert await upstream.models() == ["a"]
        now[0] += MODELS_TTL - 1
        assert await upstream.models() == ["a"] and calls[0] == 1, "kept within the TTL"
        now[0] += 1
        assert await upstream.models() == ["a", "b"] and calls[0] == 2, "fetched again after it"
    finally:
        await upstream.close()
        await runner.cleanup()


async def test_an_upstream_without_a_listing_lists_nothing():
    runner, port, _ = await serve_models([{"object": "not a list"}])
    await runner.cleanup()  # nobody listens there any more
    upstream = HttpUpstream(UpstreamConfig(name="u", base_url=f"http://127.0.0.1:{port}/v1"), Settings())
    try:
        assert await upstream.models() == []
    finally:
        await upstream.close()
