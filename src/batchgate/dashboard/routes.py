"""Serves the dashboard's page and its static files; the browser does the rest through the API.

No route here needs a key: the page asks for one and sends it itself as `Authorization: Bearer`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")
# The only kinds of file served, each with the type a browser insists on (a module script needs a JS type).
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
# Everything the page loads comes from this server; nothing inline, nothing from elsewhere.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded server's files are used at once
}


def static_file(relative: str) -> Path | None:
    """The file under STATIC named by `relative`, or None if it is not one we serve."""
    try:
        path = (STATIC / relative).resolve()
    except (ValueError, OSError):  # a NUL byte, a name too long for the system: no such file
        return None
    if not path.is_relative_to(STATIC.resolve()) or path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return path


def _file_response(path: Path) -> web.FileResponse:
    return web.FileResponse(path, headers={**HEADERS, "Content-Type": CONTENT_TYPES[path.suffix]})


async def page(request: web.Request) -> web.FileResponse:
    return _file_response(STATIC / "index.html")


async def asset(request: web.Request) -> web.FileResponse:
    path = static_file(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return _file_response(path)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/static/{path:.+}", asset)
