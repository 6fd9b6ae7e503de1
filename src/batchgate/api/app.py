"""The aiohttp application: both dialects of every route, error rendering, auth."""

from __future__ import annotations

from aiohttp import web

from batchgate.api import batches, files, inference
from batchgate.api.middleware import authenticate, errors_as_json
from batchgate.api.services import SERVICES, Services
from batchgate.api.wire import json_response

# MKA1 paths first, then OpenAI's (`base_url=<server>/v1`).
PREFIXES = ("/api/v1/llm", "/v1")
RESOURCES = (files, batches, inference)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(svc: Services) -> web.Application:
    # client_max_size bounds what aiohttp itself reads whole (request.read(), post()): the same limit as read_json.
    app = web.Application(
        middlewares=[errors_as_json, authenticate(svc.store)], client_max_size=svc.settings.max_json_body_bytes
    )
    app[SERVICES] = svc
    app.router.add_get("/healthz", healthz)
    for prefix in PREFIXES:
        for resource in RESOURCES:
            resource.add_routes(app, prefix)
    return app
