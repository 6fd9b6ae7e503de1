"""batchgate.domain.lines.well_formed: the fast path of validation accepts exactly what parse_line accepts."""

from __future__ import annotations

import pytest

from batchgate.domain.lines import ENDPOINTS, MAX_CUSTOM_ID_CHARS, LineError, parse_line, request_shape, well_formed
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


@pytest.mark.parametrize("raw", AGREEMENT_LINES)
def test_well_formed_agrees_with_parse_line(raw):
    try:
        request = parse_line(raw, 1, CHAT, LIMIT, DEPTH)
    except LineError:
        assert well_formed(raw, CHAT, DEPTH) is None
    else:
        assert well_formed(raw, CHAT, DEPTH) == (request.custom_id, request.model)


def test_well_formed_checks_the_endpoint():
    raw = line_of(**valid(url="/v1/embeddings"))
    assert well_formed(raw, "/v1/embeddings", DEPTH) == ("req-1", "m")
    assert well_formed(raw, CHAT, DEPTH) is None


@pytest.mark.parametrize("raw", AGREEMENT_LINES + [line_of(**valid(url=e)) for e in ENDPOINTS])
def test_request_shape_agrees_with_parse_line_for_every_endpoint(raw):
    """An upload's check does not know the batch's endpoint: the line's own url must be one parse_line accepts."""
    shape = request_shape(raw, DEPTH)
    for endpoint in ENDPOINTS:
        try:
            request = parse_line(raw, 1, endpoint, LIMIT, DEPTH)
        except LineError:
            assert shape is None or shape[1] != endpoint
        else:
            assert shape == (request.custom_id, endpoint, request.model)
