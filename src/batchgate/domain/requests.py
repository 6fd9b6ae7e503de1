"""Checking what clients send: create-batch bodies, list parameters, metadata, ids."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.windows import DEFAULT_WINDOW, window_hours
from batchgate.errors import InvalidRequest

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
INPUT_PURPOSE = "batch"
FILE_PURPOSES = ("batch", "batch_output")
CREATE_BATCH_FIELDS = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "max_concurrency", "output_expires_after", "dry_run"}
)


@dataclass(frozen=True)
class CreateBatch:
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    max_concurrency: int
    output_expires_seconds: int | None = None
    dry_run: bool = False  # answer the input file's plan (domain/plan.py) instead of creating the batch


@dataclass(frozen=True)
class Page:
    limit: int
    after: str | None
    descending: bool = True


def parse_create_batch(body: Any, default_concurrency: int, ceiling: int) -> CreateBatch:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = set(body) - CREATE_BATCH_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    input_file_id = _required_str(body, "input_file_id")
    endpoint = _required_str(body, "endpoint")
    if endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"'endpoint' must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}.",
            param="endpoint",
            code="invalid_endpoint",
        )
    window = body.get("completion_window", DEFAULT_WINDOW)
    window_hours(window)
    return CreateBatch(
        input_file_id,
        endpoint,
        window,
        parse_metadata(body.get("metadata")),
        _concurrency(body.get("max_concurrency"), default_concurrency, ceiling),
        parse_expires_after(body.get("output_expires_after"), "output_expires_after"),
        _dry_run(body.get("dry_run")),
    )


# A list page's `limit` when the route sets none of its own (batches).
MAX_PAGE = 100
DEFAULT_PAGE = 20
MIN_EXPIRES_AFTER = 3600
MAX_EXPIRES_AFTER = 30 * 86400


def parse_expires_after(value: Any, param: str) -> int | None:
    """`{"anchor": "created_at", "seconds": N}` → N, as OpenAI's files and batches take it."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("anchor", "created_at") != "created_at":
        raise InvalidRequest(
            f"'{param}' must be {{\"anchor\": \"created_at\", \"seconds\": N}}.",
            param=param,
            code="invalid_expires_after",
        )
    seconds = value.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not MIN_EXPIRES_AFTER <= seconds <= MAX_EXPIRES_AFTER
    ):
        raise InvalidRequest(
            f"'{param}.seconds' must be an integer from {MIN_EXPIRES_AFTER} to {MAX_EXPIRES_AFTER}.",
            param=f"{param}.seconds",
            code="invalid_expires_after",
        )
    return seconds


def parse_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(
            "'metadata' must be an object of string keys and string values.", param="metadata", code="invalid_metadata"
        )
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"'metadata' may hold at most {MAX_METADATA_PAIRS} pairs; got {len(value)}.",
            param="metadata",
            code="invalid_metadata",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key {key[:20]!r}… is longer than {MAX_METADATA_KEY} characters.",
                param=f"metadata.{key}",
                code="invalid_metadata",
            )
        if not isinstance(item, str):
            raise InvalidRequest(
                f"metadata value for {key!r} must be a string.", param=f"metadata.{key}", code="invalid_metadata"
            )
        if len(item) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata value for {key!r} is longer than {MAX_METADATA_VALUE} characters.",
                param=f"metadata.{key}",
                code="invalid_metadata",
            )
    return dict(value)


def _dry_run(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(
            f"'dry_run' must be true or false; got {value!r}.", param="dry_run", code="invalid_dry_run"
        )
    return value


def _concurrency(value: Any, default: int, ceiling: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
        raise InvalidRequest(
            f"'max_concurrency' must be an integer from 1 to {ceiling}; got {value!r}.",
            param="max_concurrency",
            code="invalid_max_concurrency",
        )
    return value


def _required_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name, code="invalid_type")
    return value


def parse_page(
    query: Mapping[str, str],
    *,
    with_order: bool = False,
    max_limit: int = MAX_PAGE,
    default_limit: int = DEFAULT_PAGE,
) -> Page:
    raw_limit = query.get("limit")
    limit = default_limit
    if raw_limit is not None:
        parsed = ascii_integer(raw_limit)
        if parsed is None:
            raise InvalidRequest(
                f"'limit' must be an integer in ASCII digits; got {raw_limit!r}.", param="limit", code="invalid_limit"
            )
        limit = parsed
        if not 1 <= limit <= max_limit:
            raise InvalidRequest(
                f"'limit' must be between 1 and {max_limit}; got {limit}.", param="limit", code="invalid_limit"
            )
    order = query.get("order", "desc") if with_order else "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest(
            f"'order' must be \"asc\" or \"desc\"; got {order!r}.", param="order", code="invalid_order"
        )
    return Page(limit=limit, after=query.get("after") or None, descending=order == "desc")


_ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")  # [0-9], not \d: int() and isdigit() also take '٣' or '²'


def ascii_integer(text: str) -> int | None:
    """The integer `text` spells in ASCII digits (surrounding blanks allowed), else None.

    Query strings and form fields are text from anyone: only plain digits count, and few enough
    of them that no int() of a huge string is ever computed.
    """
    digits = text.strip(" \t\r\n")
    return int(digits) if _ASCII_INTEGER.fullmatch(digits) else None


def parse_purpose(value: str | None, allowed: tuple[str, ...] = (INPUT_PURPOSE,)) -> str:
    if value is None:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if value not in allowed:
        raise InvalidRequest(
            f"'purpose' must be {' or '.join(repr(p) for p in allowed)}; got {value!r}.",
            param="purpose",
            code="invalid_purpose",
        )
    return value


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    if not _SHA256.fullmatch(value.lower()):
        raise InvalidRequest("'sha256' must be 64 hexadecimal characters.", param="sha256", code="invalid_sha256")
    return value.lower()


_ON_BEHALF_OF = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,255}$")


def parse_on_behalf_of(value: str | None) -> str:
    """The X-On-Behalf-Of header, or '' when absent."""
    if value is None or value == "":
        return ""
    if not _ON_BEHALF_OF.fullmatch(value):
        raise InvalidRequest(
            "X-On-Behalf-Of must be 1-256 printable ASCII characters.", param="X-On-Behalf-Of", code="invalid_header"
        )
    return value.strip()


MAX_RESULTS_PAGE = 10_000
DEFAULT_RESULTS_PAGE = 1_000


@dataclass(frozen=True)
class ResultsPage:
    after: int  # the last input line the client has; results start at the line after it
    limit: int


def parse_results_page(query: Mapping[str, str]) -> ResultsPage:
    """`after` (a line number, default 0) and `limit` (1 to MAX_RESULTS_PAGE) of a batch's results."""
    after = _query_integer(query, "after", 0, "a line number (0 or more)", "invalid_after")
    limit = _query_integer(query, "limit", DEFAULT_RESULTS_PAGE, "an integer", "invalid_limit")
    if after < 0:
        raise InvalidRequest(
            f"'after' must be a line number (0 or more); got {after}.", param="after", code="invalid_after"
        )
    if not 1 <= limit <= MAX_RESULTS_PAGE:
        raise InvalidRequest(
            f"'limit' must be between 1 and {MAX_RESULTS_PAGE}; got {limit}.", param="limit", code="invalid_limit"
        )
    return ResultsPage(after, limit)


def _query_integer(query: Mapping[str, str], name: str, default: int, what: str, code: str) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = ascii_integer(raw)
    if value is None:
        raise InvalidRequest(f"'{name}' must be {what} in ASCII digits; got {raw!r}.", param=name, code=code)
    return value
