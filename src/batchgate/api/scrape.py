"""`GET /metrics`: the process's Prometheus metrics (batchgate/metrics.py), on the API and on a worker's own port."""

from __future__ import annotations

from aiohttp import web

from batchgate import metrics
from batchgate.api.paths import METRICS_PATH
from batchgate.errors import ConfigError
from batchgate.settings import Settings
from batchgate.store import Store

STORE = web.AppKey("metrics_store", Store)


async def scrape(request: web.Request) -> web.Response:
    body = await metrics.exposition(request.app[STORE])
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application, settings: Settings, store: Store) -> None:
    """The route, unless `metrics_enabled` is off (then /metrics is a 404 like any unknown path)."""
    if settings.metrics_enabled:
        app[STORE] = store
        app.router.add_get(METRICS_PATH, scrape)


async def serve_metrics(settings: Settings, store: Store, port: int) -> web.AppRunner:
    """A listener that serves only /metrics: a worker's, on `--metrics-port`."""
    app = web.Application()
    add_routes(app, settings, store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot serve metrics on {settings.host}:{port}: {exc.strerror}") from None
    return runner
