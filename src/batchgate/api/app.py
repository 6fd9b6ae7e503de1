"""The aiohttp application: both dialects of every route, the API's document, error rendering, auth."""

from __future__ import annotations

from aiohttp import web

from batchgate.api import batch_results, batch_retry, batches, docs, files, inference, scrape, webhooks
from batchgate.api.middleware import authenticate, errors_as_json
from batchgate.api.paths import PREFIXES
from batchgate.api.services import SERVICES, Services
from batchgate.api.wire import json_response
from batchgate.dashboard import routes as dashboard

RESOURCES = (files, batches, batch_retry, batch_results, inference, webhooks)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(svc: Services) -> web.Application:
    # client_max_size bounds what aiohttp itself reads whole (request.read(), post()): the same limit as read_json.
    app = web.Application(
        middlewares=[errors_as_json, authenticate(svc.store)], client_max_size=svc.settings.max_json_body_bytes
    )
    app[SERVICES] = svc
    app.router.add_get("/healthz", healthz)
    scrape.add_routes(app, svc.settings, svc.store)
    dashboard.add_routes(app)
    docs.add_routes(app, svc.settings)
    for prefix in PREFIXES:
        for resource in RESOURCES:
            resource.add_routes(app, prefix)
    return app
