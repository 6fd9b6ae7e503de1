"""batchgate.domain.lines: parse_line error codes, valid lines, ValidationReport."""

from __future__ import annotations

import re

import orjson
import pytest

from batchgate.domain.lines import (
    ENDPOINTS,
    MAX_CUSTOM_ID_CHARS,
    LineError,
    RequestLine,
    ValidationReport,
    is_blank,
    parse_line,
)
from tests.support.request_lines import CHAT, LIMIT, line_of, valid, without


def expect_error(
    raw: bytes, line: int, code: str, *, endpoint: str = CHAT, max_line_bytes: int = LIMIT, param: str | None = None
) -> LineError:
    with pytest.raises(LineError) as info:
        parse_line(raw, line, endpoint, max_line_bytes)
    error = info.value
    assert error.code == code
    assert error.line == line
    assert re.search(rf"\bLine {line}\b", error.message), error.message
    if param is not None:
        assert error.param == param
    wire = error.to_wire()
    assert wire == {"code": code, "message": error.message, "param": error.param, "line": line}
    return error


# --- line_too_long -------------------------------------------------------------------------------------------


def test_line_too_long_reports_size_and_limit():
    raw = orjson.dumps(valid())
    error = expect_error(raw, 4, "line_too_long", max_line_bytes=len(raw) - 1)
    assert str(len(raw)) in error.message
    assert str(len(raw) - 1) in error.message


def test_line_exactly_at_the_limit_is_accepted():
    raw = orjson.dumps(valid())
    assert parse_line(raw, 1, CHAT, len(raw)).custom_id == "req-1"


def test_line_too_long_is_checked_before_anything_else():
    # Not UTF-8 and not JSON, but the size is what gets reported.
    expect_error(b"\xff" * 50, 2, "line_too_long", max_line_bytes=49)


# --- invalid_utf8 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"custom_id": "\xff", "method": "POST"}',
        b'{"custom_id": "caf\xc3"}',  # truncated multi-byte sequence
        b"\xed\xa0\x80",  # UTF-16 surrogate encoded in UTF-8
    ],
)
def test_invalid_utf8(raw):
    expect_error(raw, 9, "invalid_utf8")


def test_invalid_utf8_names_the_byte():
    error = expect_error(b'{"a": "\xff"}', 1, "invalid_utf8")
    assert "byte 8" in error.message


# --- invalid_json_line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"custom_id": "a"',
        b'{"custom_id": "a"} trailing',
        b"{'custom_id': 'a'}",
        b"undefined",
    ],
)
def test_invalid_json(raw):
    error = expect_error(raw, 12, "invalid_json_line")
    assert "not valid JSON" in error.message


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b"[1, 2]", "an array"),
        (b'"a string"', "a string"),
        (b"42", "a number"),
        (b"1.5", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
    ],
)
def test_non_object_json_is_invalid_json_line(raw, kind):
    error = expect_error(raw, 3, "invalid_json_line")
    assert "JSON object" in error.message
    assert kind in error.message


# --- custom_id -----------------------------------------------------------------------------------------------


def test_missing_custom_id():
    expect_error(line_of(**without("custom_id")), 5, "missing_custom_id", param="custom_id")


@pytest.mark.parametrize("custom_id", ["", 5, None, ["a"], {"a": 1}, True])
def test_invalid_custom_id(custom_id):
    expect_error(line_of(**valid(custom_id=custom_id)), 6, "invalid_custom_id", param="custom_id")


def test_custom_id_too_long():
    raw = line_of(**valid(custom_id="x" * (MAX_CUSTOM_ID_CHARS + 1)))
    error = expect_error(raw, 7, "invalid_custom_id", param="custom_id")
    assert str(MAX_CUSTOM_ID_CHARS) in error.message


def test_custom_id_at_max_length_is_accepted():
    custom_id = "x" * MAX_CUSTOM_ID_CHARS
    assert parse_line(line_of(**valid(custom_id=custom_id)), 1, CHAT, LIMIT).custom_id == custom_id


def test_custom_id_length_counts_characters_not_bytes():
    custom_id = "é" * MAX_CUSTOM_ID_CHARS  # 1024 bytes in UTF-8, 512 characters
    assert parse_line(line_of(**valid(custom_id=custom_id)), 1, CHAT, LIMIT).custom_id == custom_id


# --- method --------------------------------------------------------------------------------------------------


def test_missing_method():
    error = expect_error(line_of(**without("method")), 8, "missing_method", param="method")
    assert "POST" in error.message


def test_null_method_is_missing():
    expect_error(line_of(**valid(method=None)), 8, "missing_method", param="method")


@pytest.mark.parametrize("method", ["GET", "post", "PUT", 1, ""])
def test_invalid_method(method):
    error = expect_error(line_of(**valid(method=method)), 10, "invalid_method", param="method")
    assert "POST" in error.message


# --- url -----------------------------------------------------------------------------------------------------


def test_missing_url_names_the_expected_endpoint():
    error = expect_error(line_of(**without("url")), 11, "missing_url", param="url")
    assert CHAT in error.message


@pytest.mark.parametrize("url", ["/v1/embeddings", "/chat/completions", "/v1/chat/completions/", 5, ""])
def test_url_mismatch(url):
    error = expect_error(line_of(**valid(url=url)), 13, "url_mismatch", param="url")
    assert CHAT in error.message


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e != CHAT])
def test_url_must_equal_the_batch_endpoint(endpoint):
    error = expect_error(line_of(**valid()), 2, "url_mismatch", endpoint=endpoint, param="url")
    assert endpoint in error.message and CHAT in error.message


# --- body ----------------------------------------------------------------------------------------------------


def test_missing_body():
    expect_error(line_of(**without("body")), 14, "missing_body", param="body")


def test_null_body_is_missing():
    expect_error(line_of(**valid(body=None)), 14, "missing_body", param="body")


@pytest.mark.parametrize("body", [[], ["model"], "text", 1, True])
def test_invalid_body(body):
    expect_error(line_of(**valid(body=body)), 15, "invalid_body", param="body")


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"model": None}])
def test_missing_model(body):
    expect_error(line_of(**valid(body=body)), 16, "missing_model", param="body.model")


@pytest.mark.parametrize("model", ["", 5, ["gpt"], {"name": "gpt"}, False])
def test_invalid_model(model):
    expect_error(line_of(**valid(body={"model": model})), 17, "invalid_model", param="body.model")


def test_first_problem_in_field_order_is_reported():
    # Both the custom_id and the url are wrong: custom_id is checked first.
    raw = line_of(custom_id=1, method="POST", url="/nope", body={"model": "m"})
    expect_error(raw, 1, "invalid_custom_id")


def test_line_number_is_passed_through_for_large_numbers():
    expect_error(b"[]", 1_000_000, "invalid_json_line")


# --- valid lines ---------------------------------------------------------------------------------------------


VALID_BODIES = {
    "/v1/chat/completions": {"model": "llama-3", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "gpt-4o", "input": "Tell me a joke"},
    "/v1/embeddings": {"model": "bge-small", "input": ["a", "b"]},
    "/v1/images/generations": {"model": "sdxl", "prompt": "a cat", "n": 1},
}


def test_the_four_endpoints():
    assert set(ENDPOINTS) == set(VALID_BODIES)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_valid_line_for_each_endpoint(endpoint):
    body = VALID_BODIES[endpoint]
    raw = line_of(custom_id=f"id-{endpoint}", method="POST", url=endpoint, body=body)
    request = parse_line(raw, 42, endpoint, LIMIT)
    assert isinstance(request, RequestLine)
    assert request == RequestLine(42, f"id-{endpoint}", body)
    assert request.model == body["model"]


def test_valid_line_with_extra_fields_and_unicode():
    raw = (
        '{"custom_id": "naïve-✓", "method": "POST", "url": "/v1/embeddings", '
        '"body": {"model": "m", "input": "日本"}, "x": 1}'
    )
    request = parse_line(raw.encode(), 3, "/v1/embeddings", LIMIT)
    assert request.custom_id == "naïve-✓"
    assert request.body == {"model": "m", "input": "日本"}


@pytest.mark.parametrize("raw, blank", [(b"", True), (b"   ", True), (b"\t \r", True), (b" {} ", False), (b"x", False)])
def test_is_blank(raw, blank):
    assert is_blank(raw) is blank


# --- ValidationReport ----------------------------------------------------------------------------------------


def err(line: int, code: str = "invalid_json_line") -> LineError:
    return LineError(line, code, f"Line {line} is bad.", None)


def test_empty_report_is_ok_and_has_no_wire_errors():
    report = ValidationReport(keep=5)
    assert report.ok
    assert report.error_count == 0
    assert report.to_wire() is None


def test_report_keeps_the_earliest_n_lines_and_counts_all():
    report = ValidationReport(keep=3)
    for line in (9, 4, 7, 1, 5, 2):
        report.add_error(err(line))
    assert not report.ok
    assert report.error_count == 6
    assert sorted(e.line for e in report.errors) == [1, 2, 4]


def test_report_to_wire_is_sorted_by_line_and_has_the_openai_shape():
    report = ValidationReport(keep=10)
    report.add_error(LineError(8, "url_mismatch", "Line 8: bad url.", "url"))
    report.add_error(LineError(2, "invalid_json_line", "Line 2 is not valid JSON.", None))
    report.add_error(LineError(5, "duplicate_custom_id", "Line 5: dup.", "custom_id"))
    assert report.to_wire() == {
        "object": "list",
        "data": [
            {"code": "invalid_json_line", "message": "Line 2 is not valid JSON.", "param": None, "line": 2},
            {"code": "duplicate_custom_id", "message": "Line 5: dup.", "param": "custom_id", "line": 5},
            {"code": "url_mismatch", "message": "Line 8: bad url.", "param": "url", "line": 8},
        ],
    }


def test_report_to_wire_holds_only_the_kept_errors():
    report = ValidationReport(keep=2)
    for line in range(10, 0, -1):
        report.add_error(err(line))
    wire = report.to_wire()
    assert [d["line"] for d in wire["data"]] == [1, 2]
    assert report.error_count == 10


def test_errors_from_parse_line_feed_the_report():
    report = ValidationReport(keep=100)
    lines = [b"[]", line_of(**valid()), line_of(**without("body")), b"{"]
    for number, raw in enumerate(lines, 1):
        try:
            parse_line(raw, number, CHAT, LIMIT)
            report.request_count += 1
        except LineError as error:
            report.add_error(error)
    wire = report.to_wire()
    assert [(d["line"], d["code"]) for d in wire["data"]] == [
        (1, "invalid_json_line"),
        (3, "missing_body"),
        (4, "invalid_json_line"),
    ]
    assert report.request_count == 1


def test_a_streaming_body_is_refused_with_its_line():
    raw = line_of(**valid(body={**valid()["body"], "stream": True}))
    expect_error(raw, 7, "stream_not_supported", param="body.stream")
    assert parse_line(line_of(**valid(body={**valid()["body"], "stream": False})), 7, CHAT, LIMIT).custom_id == "req-1"


def test_report_names_the_one_model_of_a_file_and_none_for_a_mix():
    report = ValidationReport(keep=5)
    assert report.model is None
    report.add_model("llama")
    report.add_model("llama")
    assert report.model == "llama"
    report.add_model("qwen")
    report.add_model("llama")
    assert report.model is None
