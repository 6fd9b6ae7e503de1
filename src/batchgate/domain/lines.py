"""The JSONL request line: the one rule for what a batch input line may be.

A line is `{"custom_id": str, "method": "POST", "url": <endpoint>, "body": {"model": str, ...}}`.
`check_line` is that rule, for every reader that judges lines: the upload's check and the validating
stage (both through domain/file_check.py), and `check_file` for a file checked offline. It answers
with the line's Request, or the LineError that refuses it (a stable code and the 1-based line).
`good_requests` is the same rule over many lines at once, for the usual chunk in which every line is
a good request; `parse_line` re-reads a line validated before, to send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from batchgate.domain.nesting import depth_exceeds, too_deep, too_deep_message, within_three

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/images/generations")
MAX_CUSTOM_ID_CHARS = 512


@dataclass(frozen=True, slots=True)
class LineError(Exception):
    line: int
    code: str
    message: str
    param: str | None = None

    def to_wire(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


class Request(NamedTuple):
    """What the file-level rules need of a good request line."""

    custom_id: str
    url: str
    model: str


@dataclass(frozen=True, slots=True)
class RequestLine:
    line: int
    custom_id: str
    body: dict[str, Any]

    @property
    def model(self) -> str:
        model: str = self.body["model"]  # parse_line let the line through only with a string model
        return model


def is_blank(raw: bytes) -> bool:
    return not raw or raw.isspace()  # isspace stops at the first other byte; strip() would copy the line


def check_line(
    raw: bytes | None, line: int, endpoint: str | None, max_line_bytes: int, max_depth: int
) -> Request | LineError | None:
    """Judge one line: its Request, the LineError that refuses it, or None for a blank line (not a request).

    `raw` is the line without its newline; None stands for a line over `max_line_bytes` that the
    reader never held whole. `endpoint` is the batch's; None when it is not known yet (an upload's
    check), and the line's url must then be one of ENDPOINTS. Pure: no I/O and no state.

    A good line is settled by one parse and a handful of lookups; any other line is parsed again by
    parse_line, whose checks, in order, name the error.
    """
    if raw is not None and len(raw) <= max_line_bytes:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if type(obj) is dict and not too_deep(raw, obj, max_depth):
            shape = _shape(obj, endpoint)
            if shape is not None:
                return shape
        elif is_blank(raw):
            return None
    try:
        request = parse_line(raw, line, endpoint, max_line_bytes, max_depth)
    except LineError as error:
        return error
    # Reached only if _shape turned down a line parse_line accepts (the tests hold them to agree).
    return Request(
        request.custom_id, endpoint if endpoint is not None else orjson.loads(raw or b"")["url"], request.model
    )


def _shape(obj: dict[str, Any], endpoint: str | None) -> Request | None:
    """The Request of a parsed line within the size and depth limits, if it is a good one; else None."""
    custom_id, url, body = obj.get("custom_id"), obj.get("url"), obj.get("body")
    if (
        type(custom_id) is str
        and 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS
        and obj.get("method") == "POST"
        and (url == endpoint if endpoint is not None else url in ENDPOINTS)
        and type(body) is dict
        and body.get("stream") is not True
    ):
        model = body.get("model")
        if type(model) is str and model:
            return Request(custom_id, url, model)  # type: ignore[arg-type]  # url is endpoint or one of ENDPOINTS
    return None


_ENVELOPE = itemgetter("custom_id", "method", "url", "body")  # a good line's four fields, in one call


class GoodRequests(NamedTuple):
    """The requests of the leading good lines of a chunk: check_line's Requests, column by column."""

    custom_ids: list[str]
    models: list[str]


def good_requests(raws: Sequence[bytes | None], endpoint: str, max_line_bytes: int, max_depth: int) -> GoodRequests:
    """check_line over many lines at once, as far as they are good requests for `endpoint`.

    The Requests of the longest run of good lines that starts the chunk; the line after that run
    (blank, refused, over a limit) is check_line's to judge, for its error and its line number, and
    the lines after it may go through here again. A raw may keep its line break ("\n" or "\r\n"): the
    parse reads it as whitespace, so only the size limit must allow for it (FileCheck.feed_block).

    One parse, one lookup of the four fields and a few checks a line. The depth is found by walking
    the parsed line, not by counting brackets in its bytes as too_deep does: a line holds few
    containers and many bytes, and the count scans every byte twice. A line of the four fields alone
    is as deep as its body and one more, and a body of at most three levels (the usual chat request)
    is settled in one call. The tests hold this to accept exactly the lines check_line accepts, with
    the same Requests.
    """
    custom_ids: list[str] = []
    models: list[str] = []
    loads, fields, shallow = orjson.loads, _ENVELOPE, within_three
    take_id, take_model = custom_ids.append, models.append
    walk_body = max_depth > 3  # a body within three levels is settled by one call; the line is one more
    # _shape, inlined. Each parsed line is dropped before the next is parsed: its memory, still in
    # the cache, is reused, where a list of every line parsed first would cost twice as much.
    for raw in raws:
        if raw is None or len(raw) > max_line_bytes:
            break
        try:
            obj = loads(raw)
            custom_id, method, url, body = fields(obj)  # KeyError: a field is missing; TypeError: not an object
            model = body["model"]  # only an object (a dict) has a "model"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            break
        if (
            type(custom_id) is not str
            or not 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS
            or method != "POST"
            or url != endpoint
            or type(model) is not str
            or not model
            or body.get("stream") is True
            or not ((walk_body and len(obj) == 4 and shallow(body)) or not depth_exceeds(obj, max_depth))
        ):
            break
        take_id(custom_id)
        take_model(model)
    return GoodRequests(custom_ids, models)


def parse_line(
    raw: bytes | None, line: int, endpoint: str | None, max_line_bytes: int, max_depth: int | None = None
) -> RequestLine:
    """Parse one non-blank line (without its newline) or raise the LineError that refuses it.

    The detailed form of check_line's rule, whose checks run in the order that picks the error to
    report. `max_depth` is the nesting limit validation applies; None re-reads a line validated
    before (to send it). `endpoint` None accepts any of ENDPOINTS, as check_line does.
    """
    if raw is None or len(raw) > max_line_bytes:
        size = "longer than" if raw is None else f"{len(raw)} bytes; the limit is"
        raise LineError(line, "line_too_long", f"Line {line} is {size} {max_line_bytes} bytes.")
    try:
        obj = orjson.loads(raw)  # orjson refuses bytes that are not UTF-8, so valid lines are decoded once
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise LineError(line, "invalid_utf8", f"Line {line} is not valid UTF-8 (byte {bad.start + 1}).") from None
        raise LineError(line, "invalid_json_line", f"Line {line} is not valid JSON: {exc}.") from None
    if not isinstance(obj, dict):
        raise LineError(line, "invalid_json_line", f"Line {line} must be a JSON object, not {_json_kind(obj)}.")
    if max_depth is not None and too_deep(raw, obj, max_depth):
        raise LineError(line, "json_too_deep", f"Line {line} {too_deep_message(max_depth)}.")
    return RequestLine(line, _custom_id(obj, line), _body(obj, line, endpoint))


def _custom_id(obj: dict[str, Any], line: int) -> str:
    if "custom_id" not in obj:
        raise LineError(line, "missing_custom_id", f"Line {line} has no 'custom_id'.", "custom_id")
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError(line, "invalid_custom_id", f"Line {line}: 'custom_id' must be a non-empty string.", "custom_id")
    if len(custom_id) > MAX_CUSTOM_ID_CHARS:
        raise LineError(
            line,
            "invalid_custom_id",
            f"Line {line}: 'custom_id' is longer than {MAX_CUSTOM_ID_CHARS} characters.",
            "custom_id",
        )
    return custom_id


def _body(obj: dict[str, Any], line: int, endpoint: str | None) -> dict[str, Any]:
    method = obj.get("method")
    if method is None:
        raise LineError(line, "missing_method", f"Line {line} has no 'method'; it must be \"POST\".", "method")
    if method != "POST":
        raise LineError(line, "invalid_method", f"Line {line}: 'method' must be \"POST\", not {method!r}.", "method")
    url = obj.get("url")
    wanted = repr(endpoint) if endpoint is not None else "one of " + ", ".join(ENDPOINTS)
    if url is None:
        raise LineError(line, "missing_url", f"Line {line} has no 'url'; it must be {wanted}.", "url")
    if url != endpoint and (endpoint is not None or url not in ENDPOINTS):
        the = "the batch endpoint is" if endpoint is not None else "a batch endpoint is"
        raise LineError(line, "url_mismatch", f"Line {line}: 'url' is {url!r} but {the} {wanted}.", "url")
    body = obj.get("body")
    if body is None:
        raise LineError(line, "missing_body", f"Line {line} has no 'body'.", "body")
    if not isinstance(body, dict):
        raise LineError(line, "invalid_body", f"Line {line}: 'body' must be a JSON object.", "body")
    if body.get("stream") is True:
        raise LineError(
            line,
            "stream_not_supported",
            f"Line {line}: 'body.stream' must not be true; a batch stores whole answers.",
            "body.stream",
        )
    model = body.get("model")
    if model is None:
        raise LineError(line, "missing_model", f"Line {line}: 'body.model' is required.", "body.model")
    if not isinstance(model, str) or not model:
        raise LineError(line, "invalid_model", f"Line {line}: 'body.model' must be a non-empty string.", "body.model")
    return body


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


class ValidationReport:
    """Collects the outcome of validating a whole file, keeping the `keep` earliest errors by line.

    Errors may arrive out of line order: a repeated custom_id is found once its chunk of ids is stored.
    """

    def __init__(self, keep: int):
        self.keep = keep
        self.errors: list[LineError] = []
        self.error_count = 0
        self.request_count = 0
        self._models: set[str] = set()  # at most two are kept: one model, or "more than one"

    def add_model(self, model: str) -> None:
        if len(self._models) < 2:
            self._models.add(model)

    @property
    def model(self) -> str | None:
        """The model every line names, as OpenAI's batch object reports it; None for a mix."""
        return next(iter(self._models)) if len(self._models) == 1 else None

    @classmethod
    def of_clean_file(cls, keep: int, request_count: int, model: str | None) -> ValidationReport:
        """The report of a file found clean before (at upload): its request count and model, no errors."""
        report = cls(keep)
        report.request_count = request_count
        report._models = set() if model is None else {model}  # a clean file names a model: None means a mix
        return report

    def add_error(self, error: LineError) -> None:
        self.error_count += 1
        if len(self.errors) < self.keep:
            self.errors.append(error)
            return
        latest = max(self.errors, key=lambda e: e.line)
        if error.line < latest.line:
            self.errors.remove(latest)
            self.errors.append(error)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def to_wire(self) -> dict[str, object] | None:
        if self.ok:
            return None
        ordered = sorted(self.errors, key=lambda e: e.line)
        return {"object": "list", "data": [e.to_wire() for e in ordered]}
