"""batchgate.domain.lines.check_line: its fast path accepts what parse_line accepts; its errors are parse_line's."""

from __future__ import annotations

import contextlib

import orjson
import pytest

from batchgate.domain.lines import ENDPOINTS, MAX_CUSTOM_ID_CHARS, LineError, Request, check_line, is_blank, parse_line
from tests.support.request_lines import CHAT, LIMIT, line_of, valid, without

DEPTH = 8  # a small nesting limit, so lines at and past it are short

AGREEMENT_LINES = [
    line_of(**valid()),
    line_of(**valid(custom_id="é" * MAX_CUSTOM_ID_CHARS)),
    line_of(**valid(custom_id="x" * (MAX_CUSTOM_ID_CHARS + 1))),
    line_of(**valid(extra=[1, {"a": None}])),
    line_of(**valid(body={"model": "m", "stream": False})),
    line_of(**valid(body={"model": "m", "stream": True})),
    line_of(**valid(body={"model": "m", "stream": 1})),
    b"",
    b"   ",
    b"\xff\xfe",
    b"{",
    b"[]",
    b'"text"',
    b"3",
    b"null",
    b'{"custom_id": "a", "custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}',
    line_of(**without("custom_id")),
    line_of(**without("method")),
    line_of(**without("url")),
    line_of(**without("body")),
    *(line_of(**valid(custom_id=value)) for value in ["", 5, None, ["a"], {"a": 1}, True]),
    *(line_of(**valid(method=value)) for value in ["GET", "post", None, 1, ""]),
    *(line_of(**valid(url=value)) for value in ["/v1/embeddings", "/v1/chat/completions/", None, 5, ""]),
    *(line_of(**valid(body=value)) for value in [[], "text", 1, True, None, {}, {"model": None}]),
    *(line_of(**valid(body={"model": value})) for value in ["", 5, ["gpt"], {"name": "gpt"}, False, "gpt-x"]),
    # nesting at the limit and one past it (the line is level 1, its body level 2)
    line_of(**valid(body={"model": "m", "x": [[[[[[0]]]]]]})),
    line_of(**valid(body={"model": "m", "x": [[[[[[[0]]]]]]]})),
    line_of(**valid(body={"model": "m", "x": "[[[[[[[[[[{{{{{{{{"})),  # brackets in a string nest nothing
    b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "n": 1e999999}}',
    b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "n": 1'
    + b"0" * 5000
    + b'}}',
]


@pytest.mark.parametrize("endpoint", [CHAT, None])
@pytest.mark.parametrize("raw", AGREEMENT_LINES)
def test_check_line_agrees_with_parse_line(raw, endpoint):
    verdict = check_line(raw, 1, endpoint, LIMIT, DEPTH)
    if is_blank(raw):
        assert verdict is None
        return
    try:
        request = parse_line(raw, 1, endpoint, LIMIT, DEPTH)
    except LineError as error:
        assert verdict == error
    else:
        assert verdict == Request(request.custom_id, orjson.loads(raw)["url"], request.model)


def test_check_line_checks_the_endpoint():
    raw = line_of(**valid(url="/v1/embeddings"))
    assert check_line(raw, 1, "/v1/embeddings", LIMIT, DEPTH) == ("req-1", "/v1/embeddings", "m")
    assert check_line(raw, 1, None, LIMIT, DEPTH) == ("req-1", "/v1/embeddings", "m")
    assert check_line(raw, 1, CHAT, LIMIT, DEPTH).code == "url_mismatch"
    assert check_line(line_of(**valid(url="/v1/completions")), 1, None, LIMIT, DEPTH).code == "url_mismatch"


def test_check_line_refuses_a_line_over_the_limit_read_or_not():
    raw = line_of(**valid())
    assert check_line(None, 3, CHAT, LIMIT, DEPTH).code == "line_too_long"
    assert check_line(raw, 3, CHAT, len(raw) - 1, DEPTH).code == "line_too_long"
    assert check_line(b" " * 20, 3, CHAT, 10, DEPTH).code == "line_too_long"
    assert check_line(b" " * 10, 3, CHAT, 10, DEPTH) is None


@pytest.mark.parametrize("raw", AGREEMENT_LINES + [line_of(**valid(url=e)) for e in ENDPOINTS])
def test_the_fast_path_alone_accepts_every_good_line_for_every_endpoint(raw, monkeypatch):
    """A good line never reaches parse_line: that is what keeps the usual line cheap."""
    accepted = {}
    for endpoint in ENDPOINTS:
        with contextlib.suppress(LineError):
            accepted[endpoint] = parse_line(raw, 1, endpoint, LIMIT, DEPTH)
    monkeypatch.setattr("batchgate.domain.lines.parse_line", None)  # any call to it would fail
    for endpoint, request in accepted.items():
        assert check_line(raw, 1, endpoint, LIMIT, DEPTH) == (request.custom_id, endpoint, request.model)
        assert check_line(raw, 1, None, LIMIT, DEPTH) == (request.custom_id, endpoint, request.model)
