"""The synchronous endpoints: one request, one answer, through the same router as batch lines.

So auth, tenancy, routing, limits and retries are the batches' own. `stream: true` answers
server-sent events as the model produces them; MKA1's /chat/completions/stream always streams,
with each event named the way its SDK reads them.
"""

from __future__ import annotations

import logging
from functools import partial

import aiohttp
from aiohttp import web

from batchgate.api.middleware import not_found
from batchgate.api.services import services
from batchgate.api.wire import json_response, read_json, scope_of
from batchgate.domain.fairness import Flow
from batchgate.domain.inference import check_body, http_answer, wants_stream
from batchgate.domain.results import Outcome
from batchgate.domain.sse import NamedEvents
from batchgate.errors import BatchgateError
from batchgate.upstream.base import Stream
from batchgate.upstream.catalog import routable_models
from batchgate.upstream.router import Router

log = logging.getLogger("batchgate.api")
SYNC = "sync"  # the flow of a tenant's synchronous calls; tenants take fair turns among their calls
# Path under a dialect's prefix → the endpoint a batch line would name.
ROUTES = {
    "chat/completions": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "images/generations": "/v1/images/generations",
}


def _router(request: web.Request) -> Router:
    router = services(request).router
    if router is None:
        raise BatchgateError("This server answers batches only: it has no router for synchronous calls.")
    return router


async def infer(request: web.Request, endpoint: str, mka1_stream: bool = False) -> web.StreamResponse:
    router = _router(request)
    body = check_body(await read_json(request), endpoint)
    flow = Flow(scope_of(request).tenant, SYNC, interactive=True)  # let in before waiting batch lines
    if mka1_stream or wants_stream(body):
        opened = await router.stream(endpoint, body, flow)
        return await _stream(request, opened, NamedEvents() if mka1_stream else None)
    status, payload = http_answer(await router.send(endpoint, body, flow=flow))
    return json_response(payload, status)


async def _stream(request: web.Request, opened: Outcome | Stream, names: NamedEvents | None) -> web.StreamResponse:
    first = await _first_event(opened) if isinstance(opened, Stream) else None
    if first is None:  # no stream, or one that ended before its first event: an answer can still say why
        status, payload = http_answer(opened if isinstance(opened, Outcome) else BROKEN_OFF)
        return json_response(payload, status)
    assert isinstance(opened, Stream)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        await response.write(names.feed(first) if names else first)
        async for event in opened.events:
            await response.write(names.feed(event) if names else event)
        if names:
            await response.write(names.end())
        await response.write_eof()
    except ConnectionError:
        log.debug("client left a stream on %s", request.path)  # the model stops at its next token
    except (TimeoutError, aiohttp.ClientError) as exc:  # headers are sent: all we can do is stop
        log.warning("the upstream broke off a stream on %s: %r", request.path, exc)
    finally:
        await opened.events.aclose()
    return response


BROKEN_OFF = Outcome(
    error_code="upstream_unreachable",
    error_message="The upstream opened a stream and ended it before its first event; try again.",
)


async def _first_event(stream: Stream) -> bytes | None:
    """The stream's first piece, read before the 200 is sent; None (the stream closed) if there is none."""
    try:
        first = await anext(stream.events, None)
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("the upstream broke off a stream before its first event: %r", exc)
        first = None
    if first is None:
        await stream.events.aclose()
    return first


async def list_models(request: web.Request) -> web.Response:
    return json_response({"object": "list", "data": await routable_models(_router(request))})


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    for model in await routable_models(_router(request)):
        if model["id"] == model_id:
            return json_response(model)
    raise not_found("model", model_id, "model")


def add_routes(app: web.Application, prefix: str) -> None:
    for path, endpoint in ROUTES.items():
        app.router.add_post(f"{prefix}/{path}", partial(infer, endpoint=endpoint))
    app.router.add_post(
        f"{prefix}/chat/completions/stream", partial(infer, endpoint="/v1/chat/completions", mka1_stream=True)
    )
    app.router.add_get(f"{prefix}/models", list_models)
    app.router.add_get(f"{prefix}/models/{{model_id}}", get_model)
