"""Reading requests and writing JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from batchgate.api.services import services
from batchgate.domain.nesting import too_deep, too_deep_message
from batchgate.domain.records import Scope
from batchgate.errors import InvalidRequest, PayloadTooLarge


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The whole body as JSON, within the size and nesting limits of the settings."""
    settings = services(request).settings
    raw = await read_body(request, settings.max_json_body_bytes)
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if too_deep(raw, value, settings.max_json_depth):
        raise InvalidRequest(f"The request body {too_deep_message(settings.max_json_depth)}.", code="json_too_deep")
    return value


async def read_body(request: web.Request, limit: int) -> bytes:
    """Every byte of the body, however many pieces it arrives in; at most `limit` of them (413 beyond).

    A client that leaves mid-body raises ConnectionError, which the error middleware answers quietly.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    pieces, size = [], 0
    try:
        while piece := await request.content.readany():
            size += len(piece)
            if size > limit:  # a chunked or compressed body has no length to refuse it by up front
                raise _too_large(limit)
            pieces.append(piece)
    except web.RequestPayloadError as exc:
        raise unreadable_body(exc) from None
    return b"".join(pieces)


def unreadable_body(exc: web.RequestPayloadError) -> InvalidRequest:
    """aiohttp's failure to decode the body it is reading (a corrupt gzip, a broken chunk) as a 400."""
    if isinstance(exc.__cause__, ContentEncodingError):
        encoding = exc.__cause__.message.rsplit(":", 1)[-1].strip()
        return InvalidRequest(
            f"The body is not valid {encoding} data, as its Content-Encoding header says it is; "
            f"send it compressed correctly, or uncompressed without the header.",
            code="invalid_content_encoding",
        )
    cause = exc.__cause__ or exc
    return InvalidRequest(
        f"The request body could not be read: {getattr(cause, 'message', cause)}.", code="invalid_body"
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the limit of {limit} bytes; send less, or raise the "
        f"max_json_body_bytes setting."
    )


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value, or None; 400 if its bytes are not UTF-8.

    aiohttp keeps such bytes as lone surrogates, which no key or name may hold and nothing can encode again.
    """
    value = request.headers.get(name)
    if value is not None and not _encodable(value):
        raise InvalidRequest(
            f"The {name} header is not valid UTF-8; send it as plain ASCII text.", param=name, code="invalid_header"
        )
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SCOPE = web.RequestKey("scope", Scope)  # whose request it is, set by the auth middleware


def scope_of(request: web.Request) -> Scope:
    return request[SCOPE]
