"""batchgate.domain.sse: naming the events of a stream for MKA1's stream path; a whole answer told as events."""

from __future__ import annotations

import orjson
import pytest

from batchgate.domain.sse import NamedEvents, answer_as_events, looks_like_events

STREAM = (
    b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":" there"}}]}\r\n\r\n'
    b'data: {"error":{"message":"boom"}}\n\n'
    b": a comment\n\n"
    b"data: [DONE]\n\n"
)
NAMED = (
    b'event: message\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    b'event: message\ndata: {"choices":[{"delta":{"content":" there"}}]}\n\n'
    b'event: error\ndata: {"error":{"message":"boom"}}\n\n'
    b": a comment\n\n"
    b"event: done\ndata: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_events_are_named_whatever_the_pieces(size):
    names = NamedEvents()
    out = b"".join(names.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)) + names.end()
    assert out == NAMED


def test_an_event_that_has_a_name_keeps_it_and_a_last_event_without_blank_line_is_flushed():
    names = NamedEvents()
    assert names.feed(b"event: ping\ndata: 1\n\ndata: [DONE]") == b"event: ping\ndata: 1\n\n"
    assert names.end() == b"event: done\ndata: [DONE]\n\n"
    assert names.end() == b""


def _events(raw: bytes) -> list[bytes]:
    return [event for event in raw.split(b"\n\n") if event]


def test_a_whole_chat_completion_becomes_one_chunk_and_done():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    chunk_event, done = _events(answer_as_events("/v1/chat/completions", completion))
    assert done == b"data: [DONE]"
    chunk = orjson.loads(chunk_event.removeprefix(b"data: "))
    assert chunk["object"] == "chat.completion.chunk" and chunk["usage"] == completion["usage"]
    assert chunk["choices"] == [
        {
            "index": 0,
            "logprobs": None,
            "finish_reason": "tool_calls",
            "delta": {"role": "assistant", "tool_calls": [{**call, "index": 0}]},
        }
    ]


def test_a_whole_response_becomes_its_completed_event_and_anything_else_is_no_stream():
    response = {"id": "resp_1", "object": "response", "status": "completed", "output": []}
    (event,) = _events(answer_as_events("/v1/responses", response))
    name, data = event.split(b"\n")
    assert name == b"event: response.completed"
    assert orjson.loads(data.removeprefix(b"data: "))["response"] == response
    assert answer_as_events("/v1/chat/completions", {"error": "no choices"}) is None
    assert answer_as_events("/v1/chat/completions", [1, 2]) is None
    assert looks_like_events(b"\n data: {}\n\n") and not looks_like_events(b'{"choices": []}')
