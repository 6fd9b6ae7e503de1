"""batchgate.domain.results: output/error lines and token usage."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from batchgate.domain.records import Usage
from batchgate.domain.results import Outcome, input_tokens_of, result_line, unanswered_line, usage_of

CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def line(outcome: Outcome, request_id: str = "batch_req_1", custom_id: str = "c-1") -> dict:
    raw = result_line(request_id, custom_id, outcome)
    assert isinstance(raw, bytes) and b"\n" not in raw
    value = orjson.loads(raw)
    assert set(value) == {"id", "custom_id", "response", "error"}
    assert value["id"] == request_id and value["custom_id"] == custom_id
    return value


# --- Outcome.ok ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, ok",
    [(200, True), (201, True), (299, True), (199, False), (300, False), (400, False), (500, False), (None, False)],
)
def test_outcome_ok(status, ok):
    assert Outcome(status_code=status).ok is ok


# --- result_line ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_has_response_and_no_error(status):
    value = line(Outcome(status_code=status, body=CHAT_ANSWER, request_id="req-xyz"))
    assert value["response"] == {"status_code": status, "request_id": "req-xyz", "body": CHAT_ANSWER}
    assert value["error"] is None


def test_2xx_without_request_id():
    value = line(Outcome(status_code=200, body={"data": []}))
    assert value["response"] == {"status_code": 200, "request_id": None, "body": {"data": []}}
    assert value["error"] is None


def test_upstream_4xx_keeps_response_and_takes_code_from_body():
    body = {"error": {"message": "model 'x' not found", "type": "invalid_request_error", "code": "model_not_found"}}
    value = line(Outcome(status_code=404, body=body, request_id="r-2"))
    assert value["response"] == {"status_code": 404, "request_id": "r-2", "body": body}
    assert value["error"] == {"code": "model_not_found", "message": "model 'x' not found"}


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "bad", "code": None}},
        {"error": {"message": "bad", "code": 400}},
        {"error": {"message": "bad", "code": ""}},
        {"error": {"message": "bad"}},
    ],
)
def test_upstream_4xx_without_string_code_gets_http_status_code(body):
    value = line(Outcome(status_code=400, body=body))
    assert value["error"] == {"code": "http_400", "message": "bad"}
    assert value["response"]["body"] == body


@pytest.mark.parametrize("body", [None, "Bad Request", ["x"], {"detail": "nope"}, {"error": "boom"}, {"error": None}])
def test_upstream_error_without_detail_gets_http_code_and_generic_message(body):
    value = line(Outcome(status_code=422, body=body))
    assert value["error"]["code"] == "http_422"
    assert "422" in value["error"]["message"]
    assert value["response"] == {"status_code": 422, "request_id": None, "body": body}


def test_upstream_5xx_is_an_error_with_response():
    value = line(Outcome(status_code=503, body={"error": {"message": "overloaded", "code": "server_busy"}}))
    assert value["response"]["status_code"] == 503
    assert value["error"] == {"code": "server_busy", "message": "overloaded"}


@pytest.mark.parametrize("code", ["timeout", "upstream_unreachable", "model_not_found", "batch_expired"])
def test_no_answer_outcome_has_null_response(code):
    value = line(Outcome(error_code=code, error_message=f"because {code}"))
    assert value["response"] is None
    assert value["error"] == {"code": code, "message": f"because {code}"}


def test_no_answer_outcome_without_message_uses_the_code():
    value = line(Outcome(error_code="timeout"))
    assert value["error"] == {"code": "timeout", "message": "timeout"}


def test_custom_id_with_special_characters_round_trips():
    value = line(Outcome(status_code=200, body={}), custom_id='a"b\\c\nd✓')
    assert value["custom_id"] == 'a"b\\c\nd✓'


# --- unanswered_line -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, words", [("batch_cancelled", "cancelled"), ("batch_expired", "expired")])
def test_unanswered_line(code, words):
    value = orjson.loads(unanswered_line("batch_req_9", "c-9", code))
    assert value["id"] == "batch_req_9" and value["custom_id"] == "c-9"
    assert value["response"] is None
    assert value["error"]["code"] == code
    assert words in value["error"]["message"] and value["error"]["message"] != code


def test_unanswered_line_with_other_code():
    value = orjson.loads(unanswered_line("batch_req_9", "c-9", "upstream_unreachable"))
    assert value["response"] is None
    assert value["error"] == {"code": "upstream_unreachable", "message": "upstream_unreachable"}


# --- usage_of ------------------------------------------------------------------------------------------------


def test_usage_chat_style():
    body = {"usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    assert usage_of(body) == Usage(10, 5, 15, 0, 0)


def test_usage_chat_style_with_details():
    body = {
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    }
    assert usage_of(body) == Usage(100, 40, 140, 64, 30)


def test_usage_responses_style_with_details():
    body = {
        "object": "response",
        "usage": {
            "input_tokens": 20,
            "output_tokens": 8,
            "total_tokens": 28,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens_details": {"reasoning_tokens": 3},
        },
    }
    assert usage_of(body) == Usage(20, 8, 28, 5, 3)


def test_usage_embeddings():
    assert usage_of({"object": "list", "data": [], "usage": {"prompt_tokens": 8, "total_tokens": 8}}) == Usage(
        8, 0, 8, 0, 0
    )


def test_usage_total_defaults_to_sum():
    assert usage_of({"usage": {"input_tokens": 7, "output_tokens": 2}}) == Usage(7, 2, 9, 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        5,
        [],
        {},
        {"usage": None},
        {"usage": "many"},
        {"usage": [1, 2]},
        {"usage": {"prompt_tokens": "10", "completion_tokens": -1, "total_tokens": True}},
        {"usage": {"prompt_tokens": 1.5, "completion_tokens": None, "total_tokens": "3"}},
        {"usage": {"prompt_tokens_details": "x", "completion_tokens_details": [1]}},
        {"usage": {"input_tokens_details": {"cached_tokens": "5"}, "output_tokens_details": {"reasoning_tokens": -2}}},
    ],
)
def test_usage_garbage_is_zeros(body):
    assert usage_of(body) == Usage()
    assert input_tokens_of(body) == (0, 0)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 64}},
        {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5}},
        {"prompt_tokens": 8, "total_tokens": 8},
        {"prompt_tokens": 12, "prompt_tokens_details": None},
        {
            "input_tokens": 3,
            "prompt_tokens": 9,
            "input_tokens_details": {},
            "prompt_tokens_details": {"cached_tokens": 2},
        },
        {"prompt_tokens": 4, "prompt_tokens_details": {"cached_tokens": True}},
    ],
)
def test_input_tokens_of_reads_what_usage_of_reads(usage):
    whole = usage_of({"usage": usage})
    assert input_tokens_of({"usage": usage}) == (whole.input_tokens, whole.cached_tokens)


def test_usage_partially_garbage_keeps_the_good_parts():
    body = {"usage": {"prompt_tokens": 12, "completion_tokens": "lots", "prompt_tokens_details": None}}
    assert usage_of(body) == Usage(12, 0, 12, 0, 0)


def test_usage_adds_up():
    total = usage_of({"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}) + usage_of(
        {
            "usage": {
                "input_tokens": 10,
                "output_tokens": 20,
                "input_tokens_details": {"cached_tokens": 4},
                "output_tokens_details": {"reasoning_tokens": 6},
            }
        }
    )
    assert total == Usage(11, 22, 33, 4, 6)


def test_a_2xx_with_an_error_code_is_not_ok_and_keeps_its_response():
    outcome = Outcome(
        status_code=200,
        body={"error": {"message": "<html>"}},
        error_code="invalid_upstream_response",
        error_message="not JSON",
    )
    assert not outcome.ok
    line = orjson.loads(result_line("batch_req_1", "c1", outcome))
    assert line["response"]["status_code"] == 200
    assert line["error"] == {"code": "invalid_upstream_response", "message": "not JSON"}


def test_a_line_holds_about_its_own_size_in_memory():
    # Lines wait for their commit in the writer's backlog: each must cost its length, not a 4 KiB buffer.
    outcome = Outcome(status_code=200, request_id="req", body={"choices": [{"message": {"content": "ok"}}]})
    tracemalloc.start()
    try:
        lines = [result_line(f"batch_req_{i}", f"c{i}", outcome) for i in range(1000)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1000 * 4 * len(lines[0])
