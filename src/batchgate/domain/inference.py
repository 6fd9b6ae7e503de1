"""Synchronous calls: checking a request body, and the HTTP answer an Outcome makes."""

from __future__ import annotations

from typing import Any

from batchgate.domain.results import Outcome
from batchgate.errors import InvalidRequest

# Endpoints that may answer as server-sent events when the body asks for `stream: true`.
STREAMABLE = ("/v1/chat/completions", "/v1/responses")
# The HTTP status of a request that got no answer, by why.
NO_ANSWER_STATUS = {
    "model_not_found": 404,
    "local_model_unavailable": 503,
    "timeout": 504,
    "upstream_unreachable": 502,
    "invalid_upstream_response": 502,
}


def check_body(body: object, endpoint: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    model = body.get("model")
    if model is None:
        raise InvalidRequest(
            "'model' is required; 'auto' picks the built-in model for this endpoint.",
            param="model",
            code="missing_model",
        )
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string.", param="model", code="invalid_model")
    if body.get("stream") is True and endpoint not in STREAMABLE:
        raise InvalidRequest(f"{endpoint} does not stream; drop 'stream'.", param="stream", code="stream_not_supported")
    return body


def wants_stream(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def http_answer(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """The upstream's own status and body when it answered, else an error saying why it did not."""
    if outcome.error_code is None and outcome.status_code is not None:
        if not isinstance(outcome.body, dict):
            return 502, _error("The upstream's answer is not a JSON object.", "invalid_upstream_response", 502)
        if 200 <= outcome.status_code < 300:
            return outcome.status_code, outcome.body
        return outcome.status_code, _upstream_error(outcome.body, outcome.status_code)
    code = outcome.error_code or "upstream_error"
    status = NO_ANSWER_STATUS.get(code, 502)
    return status, _error(outcome.error_message or code, code, status)


def _upstream_error(body: dict[str, Any], status: int) -> dict[str, Any]:
    """An upstream's error in the contract's shape: its own fields kept, the missing ones filled in."""
    raw = body.get("error")
    detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
    message = detail.get("message") if isinstance(detail.get("message"), str) else None
    error = _error(message or f"The upstream answered HTTP {status}.", detail.get("code") or f"http_{status}", status)
    error["error"].update({k: detail[k] for k in ("type", "param") if detail.get(k) is not None})
    return error


def _error(message: str, code: str, status: int) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    param = "model" if code == "model_not_found" else None
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
