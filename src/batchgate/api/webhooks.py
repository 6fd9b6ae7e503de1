"""/webhooks: add, list and remove the endpoints a scope's batch events are sent to."""

from __future__ import annotations

from aiohttp import web

from batchgate import ids
from batchgate.api.middleware import not_found
from batchgate.api.services import services
from batchgate.api.wire import json_response, read_json, scope_of
from batchgate.domain.webhooks import WebhookEndpoint, new_secret, parse_endpoint_request
from batchgate.webhooks.guard import check_url


async def create(request: web.Request) -> web.Response:
    svc, scope = services(request), scope_of(request)
    spec = parse_endpoint_request(await read_json(request))
    await check_url(spec.url, svc.settings.webhooks_allow_private)
    endpoint = WebhookEndpoint(
        id=ids.new_id("we_"), scope=scope, url=spec.url, events=spec.events, secret=new_secret(), created_at=svc.now()
    )
    await svc.store.insert_webhook(endpoint)
    return json_response(endpoint.to_wire(with_secret=True))


async def list_webhooks(request: web.Request) -> web.Response:
    endpoints = await services(request).store.list_webhooks(scope_of(request))
    data = [endpoint.to_wire() for endpoint in endpoints]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }
    )


async def delete(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["webhook_id"]
    if not await services(request).store.delete_webhook(scope_of(request), endpoint_id):
        raise not_found("webhook endpoint", endpoint_id, "webhook_id")
    return json_response({"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/webhooks", create)
    app.router.add_get(f"{prefix}/webhooks", list_webhooks)
    app.router.add_delete(f"{prefix}/webhooks/{{webhook_id}}", delete)
