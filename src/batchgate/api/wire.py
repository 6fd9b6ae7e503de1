"""Reading requests and writing JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from batchgate.domain.records import Scope
from batchgate.errors import InvalidRequest

MAX_JSON_BODY = 1024 * 1024


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise InvalidRequest(f"The JSON body is larger than {MAX_JSON_BODY} bytes.", code="payload_too_large")
    raw = await request.content.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise InvalidRequest(f"The JSON body is larger than {MAX_JSON_BODY} bytes.", code="payload_too_large")
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None


SCOPE = web.RequestKey("scope", Scope)  # whose request it is, set by the auth middleware


def scope_of(request: web.Request) -> Scope:
    return request[SCOPE]
