"""`GET /openapi.json` and `GET /docs`: the API's document, and a page that renders it.

The page is the package's own HTML, CSS and script (static/docs/); it loads nothing from any
other origin, and its Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

from importlib import resources

import orjson
from aiohttp import web

from batchgate.api.openapi import build_openapi
from batchgate.api.paths import DOCS_ASSETS, DOCS_ASSETS_PATH, DOCS_PATH, OPENAPI_PATH
from batchgate.errors import NotFound
from batchgate.settings import Settings

DOCUMENT = web.AppKey("openapi_document", bytes)
STATIC = resources.files("batchgate.api") / "static" / "docs"
PAGE_HEADERS = {
    # Only this origin's files run or style the page; no frames, no plugins.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in DOCS_ASSETS:
        raise NotFound(f"No docs asset named '{name}'; there are {', '.join(sorted(DOCS_ASSETS))}.", param="name")
    return web.Response(body=_static(name), content_type=DOCS_ASSETS[name], charset="utf-8", headers=PAGE_HEADERS)


def add_routes(app: web.Application, settings: Settings) -> None:
    app[DOCUMENT] = orjson.dumps(build_openapi(settings))
    app.router.add_get(OPENAPI_PATH, openapi_document)
    app.router.add_get(DOCS_PATH, docs_page)
    app.router.add_get(DOCS_ASSETS_PATH, docs_asset)
