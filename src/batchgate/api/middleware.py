"""Every failure becomes {"error": {...}} JSON; every call but health, metrics, docs and dashboard needs a key."""

from __future__ import annotations

import logging

from aiohttp import web

from batchgate.api.paths import DOCS_PATH, METRICS_PATH, OPENAPI_PATH, UI_PATH
from batchgate.api.wire import SCOPE, header_text, json_response
from batchgate.domain.records import Scope
from batchgate.domain.requests import parse_on_behalf_of
from batchgate.errors import BatchgateError, InvalidRequest, NotFound, Unauthorized
from batchgate.ids import hash_secret

log = logging.getLogger("batchgate.api")
# Health, metrics, the API's document and its page need no key; nor does the dashboard, whose page asks for a key
# and sends it itself. The prefixes cover the two pages' own files.
PUBLIC_PATHS = frozenset({"/healthz", METRICS_PATH, UI_PATH, OPENAPI_PATH, DOCS_PATH})
PUBLIC_PREFIXES = (UI_PATH + "/", DOCS_PATH + "/")
CLIENT_CLOSED_REQUEST = 499  # never seen by anyone: the connection is gone
HTTP_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
}


@web.middleware
async def errors_as_json(request: web.Request, handler):
    try:
        return await handler(request)
    except BatchgateError as exc:
        body = exc.to_wire()
        if request.path.endswith("/content"):
            # The MKA1 SDK reads this route's error code as an integer; a null code suits both SDKs.
            body["error"]["code"] = None
        return _closing_if_body_broken(request, json_response(body, status=exc.status))
    except ConnectionError:
        # The client went away mid-request: nothing to answer, and nothing went wrong here.
        log.debug("client disconnected during %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 404:
            message = f"No route for {request.method} {request.path}."
        elif exc.status == 405:
            message = f"Method {request.method} is not allowed on {request.path}."
        body = {
            "error": {
                "message": message,
                "type": HTTP_ERROR_TYPES.get(exc.status, "invalid_request_error"),
                "param": None,
                "code": None,
            }
        }
        response = json_response(body, status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        return json_response(body, status=500)


def _closing_if_body_broken(request: web.Request, response: web.Response) -> web.Response:
    """The answer, ending the connection if aiohttp failed to decode the body (a corrupt gzip).

    The rest of such a body can be neither read nor skipped, and aiohttp would try to skip it
    after the answer and log the failure as its own.
    """
    if request.content.exception() is not None:
        request.content.feed_eof()
        response.force_close()
    return response


def authenticate(store):
    @web.middleware
    async def auth(request: web.Request, handler):
        if is_public(request.path):
            return await handler(request)
        try:
            header = header_text(request, "Authorization") or ""
        except InvalidRequest:
            raise Unauthorized(
                "The Authorization header is not valid UTF-8, so it holds no API key: send "
                "'Authorization: Bearer <key>'."
            ) from None
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>'. "
                "Create one with 'batchgate keys create --name NAME'."
            )
        owner = await store.owner_of_key(hash_secret(secret.strip()))
        if owner is None:
            raise Unauthorized("Incorrect API key provided.")
        request[SCOPE] = Scope(owner, parse_on_behalf_of(header_text(request, "X-On-Behalf-Of")))
        return await handler(request)

    return auth


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"No {kind} found with id '{object_id}'.", param=param)


def unknown_cursor(kind: str, object_id: str) -> InvalidRequest:
    """A list's `after` that names nothing the caller owns.

    OpenAI does not document this case; an empty page would end a client's paging loop as if the list
    were exhausted, hiding the mistake, so it is a 400 that names the id.
    """
    return InvalidRequest(
        f"'after' must be the id of one of your {kind}s, from an earlier page; no {kind} {object_id!r} was found.",
        param="after",
        code="invalid_after",
    )


__all__ = ["InvalidRequest", "authenticate", "errors_as_json", "not_found", "unknown_cursor"]
