"""batchgate.domain.inference: checking a synchronous call's body and the HTTP answer of an Outcome."""

from __future__ import annotations

import pytest

from batchgate.domain.inference import check_body, http_answer
from batchgate.domain.results import Outcome
from batchgate.errors import InvalidRequest


@pytest.mark.parametrize(
    "body, code",
    [
        ([1], "invalid_body"),
        ({}, "missing_model"),
        ({"model": ""}, "invalid_model"),
        ({"model": 3}, "invalid_model"),
    ],
)
def test_bad_bodies_are_refused(body, code):
    with pytest.raises(InvalidRequest) as info:
        check_body(body, "/v1/chat/completions")
    assert info.value.code == code


def test_only_chat_and_responses_stream():
    assert check_body({"model": "m", "stream": True}, "/v1/chat/completions")["stream"] is True
    assert check_body({"model": "m", "stream": True}, "/v1/responses")["stream"] is True
    with pytest.raises(InvalidRequest) as info:
        check_body({"model": "m", "stream": True}, "/v1/embeddings")
    assert info.value.code == "stream_not_supported"


def test_an_upstream_answer_keeps_its_status_and_body():
    assert http_answer(Outcome(status_code=200, body={"ok": 1})) == (200, {"ok": 1})
    error = {"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": "bad_x"}}
    assert http_answer(Outcome(status_code=422, body=error)) == (422, error)


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            {"error": {"message": "slow down", "code": "rate"}},
            {"message": "slow down", "type": "invalid_request_error", "param": None, "code": "rate"},
        ),
        (
            {"detail": "nope"},
            {
                "message": "The upstream answered HTTP 429.",
                "type": "invalid_request_error",
                "param": None,
                "code": "http_429",
            },
        ),
    ],
)
def test_an_upstream_error_gets_every_field_of_the_contract_s_shape(body, expected):
    assert http_answer(Outcome(status_code=429, body=body)) == (429, {"error": expected})


@pytest.mark.parametrize(
    "code, status, kind",
    [
        ("model_not_found", 404, "invalid_request_error"),
        ("local_model_unavailable", 503, "server_error"),
        ("timeout", 504, "server_error"),
        ("upstream_unreachable", 502, "server_error"),
        ("invalid_upstream_response", 502, "server_error"),
    ],
)
def test_no_answer_is_an_error_saying_why(code, status, kind):
    got_status, body = http_answer(Outcome(error_code=code, error_message="why"))
    assert got_status == status
    assert body["error"]["code"] == code and body["error"]["type"] == kind and body["error"]["message"] == "why"


def test_a_2xx_that_was_not_json_is_a_bad_gateway():
    outcome = Outcome(
        status_code=200,
        body={"error": {"message": "<html>"}},
        error_code="invalid_upstream_response",
        error_message="not JSON",
    )
    assert http_answer(outcome)[0] == 502
