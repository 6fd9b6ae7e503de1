"""The OpenAPI 3.1 document of every route batchgate serves, in both dialects.

Built as a plain dict from the same limits the code enforces (domain/requests.py, api/files.py and
the deployment's Settings), so the document cannot drift from what the handlers check. Served at
`GET /openapi.json`; `GET /docs` renders it; the fuzz suite drives a live server from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchgate import __version__
from batchgate.api.files import MAX_FILES_PAGE
from batchgate.api.paths import (
    DIALECT_TITLES,
    DIALECTS,
    DOCS_ASSETS,
    DOCS_ASSETS_PATH,
    DOCS_PATH,
    METRICS_PATH,
    OPENAPI_PATH,
    UI_PATH,
    UI_STATIC_PATH,
)
from batchgate.dashboard.routes import CONTENT_TYPES as UI_CONTENT_TYPES
from batchgate.domain.inference import STREAMABLE
from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.requests import (
    DEFAULT_PAGE,
    DEFAULT_RESULTS_PAGE,
    FILE_PURPOSES,
    INPUT_PURPOSE,
    MAX_EXPIRES_AFTER,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_PAGE,
    MAX_RESULTS_PAGE,
    MIN_EXPIRES_AFTER,
)
from batchgate.domain.status import BatchStatus
from batchgate.domain.webhooks import EVENT_TYPES, MAX_URL_LENGTH
from batchgate.domain.windows import DEFAULT_WINDOW, WINDOW_PATTERN
from batchgate.settings import Settings

JSON = "application/json"
TAGS = (
    ("files", "JSONL files of requests, and the output and error files batches write."),
    ("batches", "Batches: create one from an uploaded file, follow it, read its results, cancel it, retry it."),
    ("inference", "One request, one answer, routed to the same upstreams as batch lines."),
    ("webhooks", "Endpoints a scope's batch events are sent to, signed the Standard Webhooks way."),
    ("meta", "Health, this document and its page, and the dashboard. No key needed."),
)
ON_BEHALF_OF = {
    "name": "X-On-Behalf-Of",
    "in": "header",
    "required": False,
    "description": "The end user an object belongs to; objects are visible only with the same value.",
    "schema": {"type": "string", "pattern": r"^[\x21-\x7e][\x20-\x7e]{0,255}$", "maxLength": 256},
}
UNIX_SECONDS = {"type": "integer", "minimum": 0, "description": "Unix seconds."}
COMPLETION_WINDOW = {
    "type": "string",
    "pattern": WINDOW_PATTERN,
    "description": "Whole hours or days from 1h to 7d, e.g. 24h, 48h, 2d.",
}
EXPIRES_AFTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["seconds"],
    "properties": {
        "anchor": {"type": "string", "enum": ["created_at"]},
        "seconds": {"type": "integer", "minimum": MIN_EXPIRES_AFTER, "maximum": MAX_EXPIRES_AFTER},
    },
}
BATCH_TIMES = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {JSON: {"schema": schema}}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict, *, required: list[str] | None = None, closed: bool = True) -> dict:
    """An object schema; `closed` objects are the server's own, whose every field is listed."""
    schema: dict[str, Any] = {"type": "object", "required": required or list(properties), "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _ok(description: str, content: dict, links: dict | None = None) -> dict:
    """A 200 answer (with the calls its ids feed); every other status answers the error envelope (`default`)."""
    ok = {"description": description, "content": content, **({"links": links} if links else {})}
    return {"200": ok, "default": {"description": "An error.", "content": _json(ref("Error"))}}


def _links(dialect: str, field: str, param: str, operations: tuple[str, ...]) -> dict:
    """OpenAPI links: the id at `field` of this answer is the `param` of each of `operations`."""
    return {
        operation: {"operationId": f"{dialect}_{operation}", "parameters": {param: f"$response.body#/{field}"}}
        for operation in operations
    }


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
        "description": description,
    }


# --- schemas ---------------------------------------------------------------------------------------


def _error_schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "Error": {
            **_object(
                {
                    "error": _object(
                        {
                            "message": {"type": "string", "description": "One line, for people."},
                            "type": {"type": "string", "description": "e.g. invalid_request_error."},
                            "param": {**nullable_text, "description": "The parameter at fault, if one is."},
                            "code": {**nullable_text, "description": "A stable code for programs."},
                        }
                    )
                }
            ),
            "description": "Every answer that is not 2xx has this shape.",
        },
        "LineError": _object(
            {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": nullable_text,
                "line": {"type": ["integer", "null"], "minimum": 1, "description": "1-based input line."},
            },
            required=["code", "message"],
        ),
    }


def _file_schemas(settings: Settings) -> dict[str, Any]:
    return {
        "File": _object(
            {
                "id": {"type": "string", "pattern": "^file-"},
                "object": {"const": "file"},
                "bytes": {"type": "integer", "minimum": 0},
                "created_at": UNIX_SECONDS,
                "filename": {"type": "string"},
                "purpose": {"type": "string", "enum": list(FILE_PURPOSES)},
                "expires_at": _nullable(UNIX_SECONDS),
                "status": {"type": "string", "enum": ["processed"]},
                "status_details": {"type": ["string", "null"]},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
            required=["id", "object", "bytes", "created_at", "filename", "purpose", "expires_at", "status", "sha256"],
        ),
        "DeletedFile": _object({"id": {"type": "string"}, "object": {"const": "file"}, "deleted": {"const": True}}),
        "UploadFile": {
            "type": "object",
            "required": ["purpose", "file"],
            "properties": {
                "purpose": {"type": "string", "enum": [INPUT_PURPOSE]},
                "file": {
                    "type": "string",
                    "format": "binary",
                    "description": (
                        f"JSONL, one request a line: at most {settings.max_file_bytes} bytes, "
                        f"{settings.max_lines} lines, {settings.max_line_bytes} bytes a line, "
                        f"JSON nested at most {settings.max_json_depth} deep."
                    ),
                },
                "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                "expires_after[seconds]": {
                    "type": "integer",
                    "minimum": MIN_EXPIRES_AFTER,
                    "maximum": MAX_EXPIRES_AFTER,
                },
            },
        },
        "FileList": _list_of("File"),
    }


def _batch_schemas(settings: Settings) -> dict[str, Any]:
    counts = {"type": "integer", "minimum": 0}
    tokens = {"type": "integer", "minimum": 0}
    max_concurrency = {
        "type": "integer",
        "minimum": 1,
        "maximum": settings.max_concurrency_ceiling,
        "description": "Lines of this batch in flight at once.",
    }
    return {
        "RequestCounts": _object({"total": counts, "completed": counts, "failed": counts}),
        "Usage": _object(
            {
                "input_tokens": tokens,
                "input_tokens_details": _object({"cached_tokens": tokens}),
                "output_tokens": tokens,
                "output_tokens_details": _object({"reasoning_tokens": tokens}),
                "total_tokens": tokens,
            }
        ),
        "Metadata": _nullable(
            {
                "type": "object",
                "maxProperties": MAX_METADATA_PAIRS,
                "propertyNames": {"maxLength": MAX_METADATA_KEY},
                "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
            }
        ),
        "Batch": _object(
            {
                "id": {"type": "string", "pattern": "^batch_[0-9a-f]{32}$"},
                "object": {"const": "batch"},
                "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                "model": {"type": ["string", "null"], "description": "The one model every line names, if so."},
                "errors": _nullable(
                    _object({"object": {"const": "list"}, "data": {"type": "array", "items": ref("LineError")}})
                ),
                "input_file_id": {"type": "string"},
                "completion_window": COMPLETION_WINDOW,
                "status": {"type": "string", "enum": [status.value for status in BatchStatus]},
                "output_file_id": {"type": ["string", "null"]},
                "error_file_id": {"type": ["string", "null"]},
                "created_at": UNIX_SECONDS,
                "expires_at": UNIX_SECONDS,
                **{name: _nullable(UNIX_SECONDS) for name in BATCH_TIMES},
                "request_counts": ref("RequestCounts"),
                "usage": ref("Usage"),
                "metadata": ref("Metadata"),
                "max_concurrency": max_concurrency,
                "estimated_completion_at": {
                    **_nullable(UNIX_SECONDS),
                    "description": "When the last line should be answered, at the batch's rate so far; "
                    "null until a line is answered and a second has passed, and outside in_progress.",
                },
                "duplicates_saved": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Lines answered by a byte-identical repeat's answer instead of being sent; "
                    "only a batch whose metadata sets batchgate_deduplicate to \"true\" has any (docs/caching.md).",
                },
            },
            required=[
                "id",
                "object",
                "endpoint",
                "errors",
                "input_file_id",
                "completion_window",
                "status",
                "output_file_id",
                "error_file_id",
                "created_at",
                "expires_at",
                *BATCH_TIMES,
                "request_counts",
                "metadata",
                "max_concurrency",
                "estimated_completion_at",
            ],
        ),
        "CreateBatch": _object(
            {
                "input_file_id": {"type": "string", "minLength": 1},
                "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                "completion_window": {**COMPLETION_WINDOW, "default": DEFAULT_WINDOW},
                "metadata": ref("Metadata"),
                "max_concurrency": {**max_concurrency, "default": settings.default_max_concurrency},
                "output_expires_after": EXPIRES_AFTER,
                "dry_run": {
                    "type": "boolean",
                    "default": False,
                    "description": "Check the input file as the batch would and answer its plan (BatchPlan) "
                    "instead: no batch is created.",
                },
            },
            required=["input_file_id", "endpoint"],
        ),
        "BatchPlan": _batch_plan_schema(),
        "BatchList": _list_of("Batch"),
    }


def _batch_plan_schema() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        **_object(
            {
                "object": {"const": "batch.plan"},
                "input_file_id": {"type": "string"},
                "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                "lines": {**count, "description": "Requests in the file."},
                "estimated_input_tokens": {**count, "description": "The prompts' characters / 4."},
                "prefix_keys": {**count, "description": "Distinct prefix keys (docs/caching.md)."},
                "prefix_groups": {**count, "description": "Prefix keys of two lines or more."},
                "lines_in_groups": count,
                "shared_prefix_tokens": {
                    **count,
                    "description": "Input tokens a warm prefix cache could skip: (n - 1) x p over the groups.",
                },
                "shared_prefix_share": {"type": "number", "minimum": 0, "maximum": 1},
                "approximate": {
                    "type": "boolean",
                    "description": "More prefix keys than the server tracks: groups and shared tokens are "
                    "undercounted, keys overcounted.",
                },
            }
        ),
        "description": "What a batch over the file would hold, answered by a create with dry_run.",
    }


def _inference_schemas() -> dict[str, Any]:
    text_or_parts = {"type": ["string", "array"], "description": "Text, or a list of parts."}
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"type": "string", "minLength": 1}, "content": text_or_parts},
    }
    return {
        "Model": _object(
            {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            },
            required=["id", "object"],
        ),
        "ModelList": _object({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}),
        # The gateway checks `model` (and `stream`) and passes the rest of a body to the upstream as it is.
        "ChatCompletionRequest": _inference_body(
            {"messages": {"type": "array", "minItems": 1, "items": message}}, ["messages"], streams=True
        ),
        "EmbeddingRequest": _inference_body({"input": text_or_parts}, ["input"], streams=False),
        "ResponseRequest": _inference_body({"input": text_or_parts}, ["input"], streams=True),
        "ImageRequest": _inference_body({"prompt": {"type": "string"}}, ["prompt"], streams=False),
        "InferenceAnswer": {"type": "object", "description": "The upstream's own answer, passed through."},
    }


def _inference_body(properties: dict, required: list[str], *, streams: bool) -> dict:
    model = {"type": "string", "minLength": 1, "description": "Routed to an upstream; 'auto' is the built-in one."}
    stream = (
        {"type": "boolean", "description": "true answers server-sent events."}
        if streams
        else {"const": False, "description": "This endpoint does not stream."}
    )
    return {
        "type": "object",
        "required": ["model", *required],
        "properties": {"model": model, **properties, "stream": stream},
    }


def _list_of(item: str) -> dict:
    return _object(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": ref(item)},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        }
    )


def _webhook_schemas() -> dict[str, Any]:
    events = {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EVENT_TYPES)}}
    endpoint = {
        "id": {"type": "string", "pattern": "^we_"},
        "object": {"const": "webhook_endpoint"},
        "url": {"type": "string"},
        "events": events,
        "created_at": UNIX_SECONDS,
    }
    return {
        "CreateWebhookEndpoint": _object(
            {
                "url": {"type": "string", "maxLength": MAX_URL_LENGTH, "description": "An http:// or https:// URL."},
                "events": {**events, "description": "The event types to send (default: all)."},
            },
            required=["url"],
        ),
        "NewWebhookEndpoint": _object(
            {**endpoint, "secret": {"type": "string", "pattern": "^whsec_", "description": "Shown only here."}}
        ),
        "WebhookEndpoint": _object(endpoint),
        "WebhookEndpointList": _list_of("WebhookEndpoint"),
        "DeletedWebhookEndpoint": _object(
            {"id": {"type": "string"}, "object": {"const": "webhook_endpoint"}, "deleted": {"const": True}}
        ),
    }


def schemas(settings: Settings) -> dict[str, Any]:
    return {
        **_error_schemas(),
        **_file_schemas(settings),
        **_batch_schemas(settings),
        **_inference_schemas(),
        **_webhook_schemas(),
        "Health": _object({"status": {"const": "ok"}}),
        "OpenAPIDocument": {
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "description": "This document.",
        },
    }


# --- paths -----------------------------------------------------------------------------------------


def _operation(
    dialect: str,
    name: str,
    summary: str,
    tag: str,
    responses: dict,
    *,
    parameters: tuple[dict, ...] = (),
    body: dict | None = None,
    body_description: str = "",
) -> dict:
    operation: dict[str, Any] = {
        "operationId": f"{dialect}_{name}",
        "summary": summary,
        "tags": [tag],
        "parameters": [*parameters, ON_BEHALF_OF],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body, "description": body_description}
    return operation


def _file_paths(prefix: str, settings: Settings) -> dict[str, dict]:
    d = DIALECTS[prefix]
    file_id = _path("file_id", "A file id (file-…).")
    links = _links(d, "id", "file_id", ("get_file", "file_content", "delete_file"))
    links["create_batch"] = {"operationId": f"{d}_create_batch", "requestBody": {"input_file_id": "$response.body#/id"}}
    one = (file_id,)
    return {
        f"{prefix}/files": {
            "post": _operation(
                d,
                "upload_file",
                "Upload a JSONL file of requests.",
                "files",
                _ok("The stored file.", _json(ref("File")), links),
                body={"multipart/form-data": {"schema": ref("UploadFile")}},
                body_description=f"At most {settings.max_file_bytes} bytes.",
            ),
            "get": _operation(
                d,
                "list_files",
                "List the caller's files, newest first.",
                "files",
                _ok("A page of files.", _json(ref("FileList"))),
                parameters=(
                    _query("after", {"type": "string"}, "A file id: the page starts after it."),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_FILES_PAGE, "default": MAX_FILES_PAGE}
                    ),
                    _query("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                    _query("purpose", {"type": "string", "enum": list(FILE_PURPOSES)}),
                    _query("sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "Only files with this hash."),
                ),
            ),
        },
        f"{prefix}/files/{{file_id}}": {
            "get": _operation(
                d, "get_file", "A file's metadata.", "files", _ok("The file.", _json(ref("File"))), parameters=one
            ),
            "delete": _operation(
                d,
                "delete_file",
                "Delete a file and its bytes.",
                "files",
                _ok("The deleted file.", _json(ref("DeletedFile"))),
                parameters=one,
            ),
        },
        f"{prefix}/files/{{file_id}}/content": {
            "get": _operation(
                d,
                "file_content",
                "A file's bytes.",
                "files",
                _ok("The JSONL bytes.", {"application/jsonl": {"schema": {"type": "string"}}}),
                parameters=one,
            ),
        },
    }


def _batch_paths(prefix: str, settings: Settings) -> dict[str, dict]:
    d = DIALECTS[prefix]
    batch_id = _path("batch_id", "A batch id (batch_…).")
    links = _links(d, "id", "batch_id", ("get_batch", "cancel_batch", "batch_results", "retry_batch"))
    output_links = _links(d, "output_file_id", "file_id", ("get_file", "file_content"))
    links.update({f"{name}_output": link for name, link in output_links.items()})
    return {
        f"{prefix}/batches": {
            "post": _operation(
                d,
                "create_batch",
                "Create a batch from an uploaded file.",
                "batches",
                _ok(
                    "The new batch; with dry_run, the input file's plan and no batch.",
                    _json({"oneOf": [ref("Batch"), ref("BatchPlan")]}),
                    links,
                ),
                body=_json(ref("CreateBatch")),
                body_description=_json_body_limits(settings),
            ),
            "get": _operation(
                d,
                "list_batches",
                "List the caller's batches, newest first.",
                "batches",
                _ok("A page of batches.", _json(ref("BatchList"))),
                parameters=(
                    _query("after", {"type": "string"}, "A batch id: the page starts after it."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}),
                ),
            ),
        },
        f"{prefix}/batches/{{batch_id}}": {
            "get": _operation(
                d,
                "get_batch",
                "A batch.",
                "batches",
                _ok("The batch.", _json(ref("Batch")), links),
                parameters=(batch_id,),
            ),
        },
        f"{prefix}/batches/{{batch_id}}/cancel": {
            "post": _operation(
                d,
                "cancel_batch",
                "Cancel a batch.",
                "batches",
                _ok("The batch, cancelling or cancelled.", _json(ref("Batch"))),
                parameters=(batch_id,),
            ),
        },
        f"{prefix}/batches/{{batch_id}}/results": {
            "get": _operation(
                d,
                "batch_results",
                "The result lines recorded so far, in input order, each with its line; while the batch runs, up "
                "to the first line still to come.",
                "batches",
                _ok(
                    "NDJSON: one output or error line object per line, plus `line` (its 1-based input line).",
                    {"application/x-ndjson": {"schema": {"type": "string"}}},
                ),
                parameters=(
                    batch_id,
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0, "default": 0},
                        "A line number: results start after it (the last `line` of the previous page).",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS_PAGE, "default": DEFAULT_RESULTS_PAGE},
                    ),
                ),
            ),
        },
        f"{prefix}/batches/{{batch_id}}/retry": {
            "post": _operation(
                d,
                "retry_batch",
                "A new batch of the lines an ended batch put in its error file (409 nothing_to_retry if none).",
                "batches",
                _ok("The new batch; its metadata.retry_of names the old one.", _json(ref("Batch")), links),
                parameters=(batch_id,),
            ),
        },
    }


def _webhook_paths(prefix: str, settings: Settings) -> dict[str, dict]:
    d = DIALECTS[prefix]
    return {
        f"{prefix}/webhooks": {
            "post": _operation(
                d,
                "create_webhook",
                "Send this scope's batch events (batch.completed, .failed, .expired, .cancelled) to a URL.",
                "webhooks",
                _ok("The new endpoint, with its signing secret.", _json(ref("NewWebhookEndpoint"))),
                body=_json(ref("CreateWebhookEndpoint")),
                body_description="A URL on a loopback, link-local or private address is refused unless the "
                "server's config sets webhooks_allow_private.",
            ),
            "get": _operation(
                d,
                "list_webhooks",
                "The caller's webhook endpoints.",
                "webhooks",
                _ok("The endpoints.", _json(ref("WebhookEndpointList"))),
            ),
        },
        f"{prefix}/webhooks/{{webhook_id}}": {
            "delete": _operation(
                d,
                "delete_webhook",
                "Remove a webhook endpoint; its undelivered events are dropped.",
                "webhooks",
                _ok("The removed endpoint.", _json(ref("DeletedWebhookEndpoint"))),
                parameters=(_path("webhook_id", "A webhook endpoint id (we_…)."),),
            ),
        },
    }


def _inference_paths(prefix: str, settings: Settings) -> dict[str, dict]:
    d = DIALECTS[prefix]
    events = {"text/event-stream": {"schema": {"type": "string"}}}
    paths: dict[str, dict] = {
        f"{prefix}/models": {
            "get": _operation(
                d,
                "list_models",
                "The models the upstreams serve.",
                "inference",
                _ok("The models.", _json(ref("ModelList"))),
            ),
        },
        f"{prefix}/models/{{model_id}}": {
            "get": _operation(
                d,
                "get_model",
                "One model.",
                "inference",
                _ok("The model.", _json(ref("Model"))),
                parameters=(_path("model_id", "A model's name."),),
            ),
        },
    }
    for path, schema, endpoint, summary in (
        ("chat/completions", "ChatCompletionRequest", "/v1/chat/completions", "A chat completion."),
        ("embeddings", "EmbeddingRequest", "/v1/embeddings", "Embeddings."),
        ("responses", "ResponseRequest", "/v1/responses", "A response."),
        ("images/generations", "ImageRequest", "/v1/images/generations", "Generated images."),
    ):
        streams = endpoint in STREAMABLE
        answer = {**_json(ref("InferenceAnswer")), **(events if streams else {})}
        paths[f"{prefix}/{path}"] = {
            "post": _operation(
                d,
                path.replace("/", "_"),
                summary + (" `stream: true` answers server-sent events." if streams else ""),
                "inference",
                _ok("The upstream's answer.", answer),
                body=_json(ref(schema)),
                body_description=_json_body_limits(settings),
            )
        }
    paths[f"{prefix}/chat/completions/stream"] = {
        "post": _operation(
            d,
            "chat_completions_stream",
            "A chat completion, always streamed, events named the MKA1 way.",
            "inference",
            _ok("Server-sent events.", events),
            body=_json(ref("ChatCompletionRequest")),
            body_description=_json_body_limits(settings),
        )
    }
    return paths


def _json_body_limits(settings: Settings) -> str:
    return f"JSON of at most {settings.max_json_body_bytes} bytes, nested at most {settings.max_json_depth} deep."


def _public_get(operation_id: str, summary: str, content: dict, parameters: tuple[dict, ...] = ()) -> dict:
    operation = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["meta"],
        "security": [],
        "responses": _ok(summary, content),
    }
    if parameters:
        operation["parameters"] = list(parameters)
    return {"get": operation}


def _meta_paths(settings: Settings) -> dict[str, dict]:
    asset = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(DOCS_ASSETS)},
    }
    metrics = {
        METRICS_PATH: _public_get(
            "metrics",
            "This process's metrics in the Prometheus text format.",
            {"text/plain": {"schema": {"type": "string"}}},
        )
    }
    return {
        "/healthz": _public_get("healthz", "200 once the server can serve.", _json(ref("Health"))),
        **(metrics if settings.metrics_enabled else {}),
        OPENAPI_PATH: _public_get("openapi", "This OpenAPI document.", _json(ref("OpenAPIDocument"))),
        DOCS_PATH: _public_get(
            "docs", "A page that renders this document.", {"text/html": {"schema": {"type": "string"}}}
        ),
        DOCS_ASSETS_PATH: _public_get(
            "docs_asset",
            "The docs page's stylesheet and script.",
            _text(DOCS_ASSETS.values()),
            (asset,),
        ),
        # The dashboard: a page that asks for a key and calls the routes above with it.
        UI_PATH: _public_get("ui", "The dashboard.", _text(["text/html"])),
        UI_PATH + "/": _public_get("ui_slash", "The dashboard (the same page).", _text(["text/html"])),
        UI_STATIC_PATH: _public_get(
            "ui_static",
            "The dashboard's own files: HTML, CSS, scripts and icons.",
            _text(UI_CONTENT_TYPES.values()),
            ({"name": "path", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},),
        ),
    }


def _text(media_types: Iterable[str]) -> dict:
    return {media: {"schema": {"type": "string"}} for media in sorted(set(media_types))}


def build_openapi(settings: Settings | None = None) -> dict[str, Any]:
    """The document; `settings` supplies the limits a deployment may change (sizes, the concurrency ceiling)."""
    settings = settings or Settings()
    paths = _meta_paths(settings)
    for prefix in DIALECTS:
        paths.update(_file_paths(prefix, settings))
        paths.update(_batch_paths(prefix, settings))
        paths.update(_inference_paths(prefix, settings))
        paths.update(_webhook_paths(prefix, settings))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "batchgate",
            "version": __version__,
            "description": (
                "A self-hosted Batch API for LLM requests, in two dialects: the MKA1 SDK's paths under "
                "`/api/v1/llm` and the OpenAI SDK's under `/v1`. Every call but the `meta` ones needs "
                "`Authorization: Bearer <key>`; objects are visible only to their owner and `X-On-Behalf-Of`."
            ),
        },
        "tags": [{"name": name, "description": description} for name, description in TAGS],
        # The same operations under each prefix; the docs page shows one dialect at a time.
        "x-dialects": [
            {"name": name, "title": DIALECT_TITLES[name], "prefix": prefix} for prefix, name in DIALECTS.items()
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(settings),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from 'batchgate keys create --name NAME'.",
                }
            },
        },
        "security": [{"bearer": []}],
    }
