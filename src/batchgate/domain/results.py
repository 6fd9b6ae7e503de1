"""One line of the output or error file, built from what happened to a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from batchgate.domain.records import Usage


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the upstream said (status_code and body) or why there is no answer (error_code)."""

    status_code: int | None = None
    body: object = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None and self.status_code is not None and 200 <= self.status_code < 300


def result_line(request_id: str, custom_id: str, outcome: Outcome) -> bytes:
    """The JSON of one output/error line, without its newline."""
    response = None
    if outcome.status_code is not None:
        response = {"status_code": outcome.status_code, "request_id": outcome.request_id, "body": outcome.body}
    error = None
    if outcome.error_code is not None:
        error = {"code": outcome.error_code, "message": outcome.error_message or outcome.error_code}
    elif not outcome.ok:
        error = {"code": _upstream_error_code(outcome), "message": _upstream_error_message(outcome)}
    line = orjson.dumps({"id": request_id, "custom_id": custom_id, "response": response, "error": error})
    # orjson's bytes keep its whole working buffer (4 KiB for a short line); a line waits in memory for
    # its commit, up to the writer's backlog of them, so it is kept at its own size.
    return bytes(memoryview(line))


def unanswered_line(request_id: str, custom_id: str, code: str) -> bytes:
    messages = {
        "batch_cancelled": "The batch was cancelled before this request completed.",
        "batch_expired": "The batch expired before this request completed.",
    }
    return result_line(request_id, custom_id, Outcome(error_code=code, error_message=messages.get(code, code)))


def _upstream_error_code(outcome: Outcome) -> str:
    detail = _error_detail(outcome.body)
    code = detail.get("code") if detail else None
    return code if isinstance(code, str) and code else f"http_{outcome.status_code}"


def _upstream_error_message(outcome: Outcome) -> str:
    detail = _error_detail(outcome.body)
    message = detail.get("message") if detail else None
    return message if isinstance(message, str) and message else f"The upstream answered HTTP {outcome.status_code}."


def _error_detail(body: object) -> dict[str, Any] | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def usage_of(body: object) -> Usage:
    """Token usage of an answer: chat/embeddings (prompt/completion) or responses (input/output) style."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    input_tokens = _int(usage.get("input_tokens", usage.get("prompt_tokens")))
    output_tokens = _int(usage.get("output_tokens", usage.get("completion_tokens")))
    total = _int(usage.get("total_tokens")) or input_tokens + output_tokens
    in_details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens,
        output_tokens,
        total,
        _int(in_details.get("cached_tokens")) if isinstance(in_details, dict) else 0,
        _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0,
    )


def input_tokens_of(body: object) -> tuple[int, int]:
    """(input tokens, the cached part of them) of an answer, read as usage_of reads them, without the rest."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return _int(usage.get("input_tokens", usage.get("prompt_tokens"))), cached


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
