"""The OpenAPI 3.1 document of every route batchgate serves, in both dialects.

Built as a plain dict from the same limits the code enforces (domain/requests.py, api/files.py,
settings), so it can move into the product (`GET /openapi.json`) unchanged. Until then the fuzz
suite (tests/contract/test_api_fuzz.py) drives a live server from it.
"""

from __future__ import annotations

from typing import Any

from batchgate.api.app import PREFIXES
from batchgate.api.files import MAX_FILES_PAGE
from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.requests import (
    COMPLETION_WINDOWS,
    FILE_PURPOSES,
    INPUT_PURPOSE,
    MAX_EXPIRES_AFTER,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MIN_EXPIRES_AFTER,
)
from batchgate.settings import Settings

MKA1_PREFIX, OPENAI_PREFIX = PREFIXES
DIALECTS = {MKA1_PREFIX: "mka1", OPENAI_PREFIX: "openai"}
BATCH_STATUSES = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)
JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {JSON: {"schema": schema}}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _ok(description: str, content: dict, links: dict | None = None) -> dict:
    """A 200 answer (with the calls its ids feed); every other status answers the error envelope (`default`)."""
    ok = {"description": description, "content": content, **({"links": links} if links else {})}
    return {"200": ok, "default": {"description": "An error.", "content": _json(_ref("Error"))}}


def _links(dialect: str, field: str, param: str, operations: tuple[str, ...]) -> dict:
    """OpenAPI links: the id at `field` of this answer is the `param` of each of `operations`."""
    return {
        operation: {"operationId": f"{dialect}_{operation}", "parameters": {param: f"$response.body#/{field}"}}
        for operation in operations
    }


UNIX_SECONDS = {"type": "integer", "minimum": 0}
EXPIRES_AFTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["seconds"],
    "properties": {
        "anchor": {"type": "string", "enum": ["created_at"]},
        "seconds": {"type": "integer", "minimum": MIN_EXPIRES_AFTER, "maximum": MAX_EXPIRES_AFTER},
    },
}


def _schemas(max_concurrency_ceiling: int) -> dict[str, Any]:
    error_item = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "line": {"type": ["integer", "null"]},
        },
    }
    batch_times = (
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
    )
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "param", "code"],
                    "additionalProperties": False,
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": ["string", "null"]},
                    },
                }
            },
        },
        "File": {
            "type": "object",
            "required": [
                "id",
                "object",
                "bytes",
                "created_at",
                "filename",
                "purpose",
                "expires_at",
                "status",
                "sha256",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^file-"},
                "object": {"const": "file"},
                "bytes": {"type": "integer", "minimum": 0},
                "created_at": UNIX_SECONDS,
                "filename": {"type": "string"},
                "purpose": {"type": "string", "enum": list(FILE_PURPOSES)},
                "expires_at": _nullable(UNIX_SECONDS),
                "status": {"type": "string"},
                "status_details": {"type": ["string", "null"]},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "DeletedFile": {
            "type": "object",
            "required": ["id", "object", "deleted"],
            "properties": {"id": {"type": "string"}, "object": {"const": "file"}, "deleted": {"type": "boolean"}},
        },
        "RequestCounts": {
            "type": "object",
            "required": ["total", "completed", "failed"],
            "properties": {k: {"type": "integer", "minimum": 0} for k in ("total", "completed", "failed")},
        },
        "Metadata": _nullable(
            {
                "type": "object",
                "maxProperties": MAX_METADATA_PAIRS,
                "propertyNames": {"maxLength": MAX_METADATA_KEY},
                "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
            }
        ),
        "Batch": {
            "type": "object",
            "required": [
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
                *batch_times,
                "request_counts",
                "metadata",
                "max_concurrency",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^batch_[0-9a-f]{32}$"},
                "object": {"const": "batch"},
                "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                "model": {"type": ["string", "null"]},
                "errors": _nullable(
                    {
                        "type": "object",
                        "required": ["object", "data"],
                        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": error_item}},
                    }
                ),
                "input_file_id": {"type": "string"},
                "completion_window": {"type": "string", "enum": list(COMPLETION_WINDOWS)},
                "status": {"type": "string", "enum": list(BATCH_STATUSES)},
                "output_file_id": {"type": ["string", "null"]},
                "error_file_id": {"type": ["string", "null"]},
                "created_at": UNIX_SECONDS,
                "expires_at": UNIX_SECONDS,
                **{name: _nullable(UNIX_SECONDS) for name in batch_times},
                "request_counts": _ref("RequestCounts"),
                "usage": {"type": "object"},
                "metadata": _ref("Metadata"),
                "max_concurrency": {"type": "integer", "minimum": 1, "maximum": max_concurrency_ceiling},
            },
        },
        "CreateBatch": {
            "type": "object",
            "additionalProperties": False,
            "required": ["input_file_id", "endpoint"],
            "properties": {
                "input_file_id": {"type": "string", "minLength": 1},
                "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                "completion_window": {"type": "string", "enum": list(COMPLETION_WINDOWS)},
                "metadata": _ref("Metadata"),
                "max_concurrency": {"type": "integer", "minimum": 1, "maximum": max_concurrency_ceiling},
                "output_expires_after": EXPIRES_AFTER,
            },
        },
        "UploadFile": {
            "type": "object",
            "required": ["purpose", "file"],
            "properties": {
                "purpose": {"type": "string", "enum": [INPUT_PURPOSE]},
                "file": {"type": "string", "format": "binary"},
                "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                "expires_after[seconds]": {
                    "type": "integer",
                    "minimum": MIN_EXPIRES_AFTER,
                    "maximum": MAX_EXPIRES_AFTER,
                },
            },
        },
        "FileList": _list_of("File"),
        "BatchList": _list_of("Batch"),
        "Model": {
            "type": "object",
            "required": ["id", "object"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
        },
        # The synchronous bodies: the gateway checks `model` (and `stream`) and passes the rest to the upstream.
        "ChatCompletionRequest": _inference_body(
            {
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                            "content": {"type": "string", "maxLength": 200},
                        },
                    },
                },
                "stream": {"type": "boolean"},
            },
            ["messages"],
        ),
        "EmbeddingRequest": _inference_body({"input": {"type": "string", "maxLength": 200}}, ["input"]),
        "ResponseRequest": _inference_body(
            {"input": {"type": "string", "maxLength": 200}, "stream": {"type": "boolean"}}, ["input"]
        ),
        "ImageRequest": _inference_body({"prompt": {"type": "string", "maxLength": 200}}, ["prompt"]),
        "InferenceAnswer": {"type": "object", "description": "The upstream's own answer, passed through."},
    }


def _list_of(item: str) -> dict:
    return {
        "type": "object",
        "required": ["object", "data", "first_id", "last_id", "has_more"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref(item)},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    }


def _inference_body(properties: dict, required: list[str]) -> dict:
    model = {"type": "string", "minLength": 1, "description": "Routed to an upstream; 'auto' is the built-in one."}
    return {"type": "object", "required": ["model", *required], "properties": {"model": model, **properties}}


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


ON_BEHALF_OF = {
    "name": "X-On-Behalf-Of",
    "in": "header",
    "required": False,
    "description": "The end user an object belongs to; objects are visible only with the same value.",
    "schema": {"type": "string", "pattern": r"^[\x21-\x7e][\x20-\x7e]{0,255}$"},
}


def _operation(
    dialect: str,
    name: str,
    summary: str,
    tag: str,
    responses: dict,
    *,
    parameters: tuple[dict, ...] = (),
    body: dict | None = None,
) -> dict:
    operation = {
        "operationId": f"{dialect}_{name}",
        "summary": summary,
        "tags": [tag],
        "parameters": [*parameters, ON_BEHALF_OF],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    return operation


def _dialect_paths(prefix: str) -> dict[str, dict]:
    d = DIALECTS[prefix]
    file_id, batch_id, model_id = _path("file_id"), _path("batch_id"), _path("model_id")
    page_limit = {"type": "integer", "minimum": 1}
    file_links = _links(d, "id", "file_id", ("get_file", "file_content", "delete_file"))
    file_links["create_batch"] = {
        "operationId": f"{d}_create_batch",
        "requestBody": {"input_file_id": "$response.body#/id"},
    }
    batch_links = _links(d, "id", "batch_id", ("get_batch", "cancel_batch"))
    batch_links.update(
        {
            f"{name}_output": link
            for name, link in _links(d, "output_file_id", "file_id", ("get_file", "file_content")).items()
        }
    )
    paths = {
        f"{prefix}/files": {
            "post": _operation(
                d,
                "upload_file",
                "Upload a JSONL file of requests.",
                "files",
                _ok("The stored file.", _json(_ref("File")), file_links),
                body={"multipart/form-data": {"schema": _ref("UploadFile")}},
            ),
            "get": _operation(
                d,
                "list_files",
                "List the caller's files, newest first.",
                "files",
                _ok("A page of files.", _json(_ref("FileList"))),
                parameters=(
                    _query("after", {"type": "string"}, "A file id: the page starts after it."),
                    _query("limit", {**page_limit, "maximum": MAX_FILES_PAGE, "default": MAX_FILES_PAGE}),
                    _query("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                    _query("purpose", {"type": "string", "enum": list(FILE_PURPOSES)}),
                    _query("sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
                ),
            ),
        },
        f"{prefix}/files/{{file_id}}": {
            "get": _operation(
                d,
                "get_file",
                "A file's metadata.",
                "files",
                _ok("The file.", _json(_ref("File"))),
                parameters=(file_id,),
            ),
            "delete": _operation(
                d,
                "delete_file",
                "Delete a file and its bytes.",
                "files",
                _ok("The deleted file.", _json(_ref("DeletedFile"))),
                parameters=(file_id,),
            ),
        },
        f"{prefix}/files/{{file_id}}/content": {
            "get": _operation(
                d,
                "file_content",
                "A file's bytes.",
                "files",
                _ok("The JSONL bytes.", {"application/jsonl": {"schema": {"type": "string"}}}),
                parameters=(file_id,),
            ),
        },
        f"{prefix}/batches": {
            "post": _operation(
                d,
                "create_batch",
                "Create a batch from an uploaded file.",
                "batches",
                _ok("The new batch.", _json(_ref("Batch")), batch_links),
                body=_json(_ref("CreateBatch")),
            ),
            "get": _operation(
                d,
                "list_batches",
                "List the caller's batches, newest first.",
                "batches",
                _ok("A page of batches.", _json(_ref("BatchList"))),
                parameters=(
                    _query("after", {"type": "string"}, "A batch id: the page starts after it."),
                    _query("limit", {**page_limit, "maximum": 100, "default": 20}),
                ),
            ),
        },
        f"{prefix}/batches/{{batch_id}}": {
            "get": _operation(
                d,
                "get_batch",
                "A batch.",
                "batches",
                _ok("The batch.", _json(_ref("Batch")), batch_links),
                parameters=(batch_id,),
            ),
        },
        f"{prefix}/batches/{{batch_id}}/cancel": {
            "post": _operation(
                d,
                "cancel_batch",
                "Cancel a batch.",
                "batches",
                _ok("The batch, cancelling or cancelled.", _json(_ref("Batch"))),
                parameters=(batch_id,),
            ),
        },
        f"{prefix}/models": {
            "get": _operation(
                d,
                "list_models",
                "The models the upstreams serve.",
                "inference",
                _ok("The models.", _json(_ref("ModelList"))),
            ),
        },
        f"{prefix}/models/{{model_id}}": {
            "get": _operation(
                d,
                "get_model",
                "One model.",
                "inference",
                _ok("The model.", _json(_ref("Model"))),
                parameters=(model_id,),
            ),
        },
    }
    answer = {**_json(_ref("InferenceAnswer")), "text/event-stream": {"schema": {"type": "string"}}}
    for path, schema, summary in (
        ("chat/completions", "ChatCompletionRequest", "A chat completion."),
        ("embeddings", "EmbeddingRequest", "Embeddings."),
        ("responses", "ResponseRequest", "A response."),
        ("images/generations", "ImageRequest", "Generated images."),
    ):
        name = path.replace("/", "_")
        paths[f"{prefix}/{path}"] = {
            "post": _operation(
                d,
                name,
                summary + " `stream: true` answers events.",
                "inference",
                _ok("The upstream's answer.", answer),
                body=_json(_ref(schema)),
            )
        }
    paths[f"{prefix}/chat/completions/stream"] = {
        "post": _operation(
            d,
            "chat_completions_stream",
            "A chat completion, always streamed, events named the MKA1 way.",
            "inference",
            _ok("Server-sent events.", {"text/event-stream": {"schema": {"type": "string"}}}),
            body=_json(_ref("ChatCompletionRequest")),
        )
    }
    return paths


def build_openapi(settings: Settings | None = None) -> dict[str, Any]:
    """The document; `settings` supplies the limits a deployment may change (the max_concurrency ceiling)."""
    settings = settings or Settings()
    paths: dict[str, dict] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "200 once the server can serve.",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "Healthy.",
                        "content": _json(
                            {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
                        ),
                    }
                },
            }
        }
    }
    for prefix in PREFIXES:
        paths.update(_dialect_paths(prefix))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "batchgate",
            "version": "1",
            "description": "A self-hosted Batch API. MKA1 paths under /api/v1/llm, OpenAI's under /v1.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(settings.max_concurrency_ceiling),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from 'batchgate keys create'.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


__all__ = ["build_openapi"]
