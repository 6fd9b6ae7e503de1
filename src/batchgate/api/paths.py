"""Where things are served: the two dialects' prefixes, and the API's document and its page."""

from __future__ import annotations

# MKA1 paths first, then OpenAI's (`base_url=<server>/v1`).
DIALECTS = {"/api/v1/llm": "mka1", "/v1": "openai"}
DIALECT_TITLES = {"mka1": "MKA1", "openai": "OpenAI"}
PREFIXES = tuple(DIALECTS)

OPENAPI_PATH = "/openapi.json"
METRICS_PATH = "/metrics"  # Prometheus text format (api/scrape.py)
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = DOCS_PATH + "/assets/{name}"
# The docs page's own files and their media types (the page loads nothing from anywhere else).
DOCS_ASSETS = {"docs.css": "text/css", "docs.js": "text/javascript"}

# The dashboard (dashboard/routes.py): its page, and the files the page loads.
UI_PATH = "/ui"
UI_STATIC_PATH = UI_PATH + "/static/{path}"
