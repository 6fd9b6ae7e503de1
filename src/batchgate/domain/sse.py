"""Server-sent events: MKA1's named events, and a whole answer told as a stream.

OpenAI-style streams send bare `data:` events and end with `data: [DONE]`; MKA1's stream path
sends `event: message` for each chunk, `event: done` at the end and `event: error` for a failure.
An upstream may ignore `stream: true` and answer one JSON object: `answer_as_events` tells that
answer the way a stream would have, so a streaming client still reads it.
"""

from __future__ import annotations

from typing import Any

import orjson


class NamedEvents:
    """Feed the bytes of a stream in whatever pieces they come; get back whole events, each named."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, piece: bytes) -> bytes:
        *events, self._pending = (self._pending + piece).replace(b"\r\n", b"\n").split(b"\n\n")
        return b"".join(named(event) for event in events if event.strip())

    def end(self) -> bytes:
        rest, self._pending = self._pending, b""
        return named(rest) if rest.strip() else b""


def named(event: bytes) -> bytes:
    lines = event.strip(b"\n").split(b"\n")
    if any(line.startswith(b"event:") for line in lines) or not any(line.startswith(b"data:") for line in lines):
        return b"\n".join(lines) + b"\n\n"  # already named, or a comment: nothing to name
    data = b"\n".join(line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:"))
    return b"event: " + _kind(data) + b"\n" + b"\n".join(lines) + b"\n\n"


def _kind(data: bytes) -> bytes:
    if data == b"[DONE]":
        return b"done"
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return b"message"
    return b"error" if isinstance(payload, dict) and "error" in payload else b"message"


def answer_as_events(endpoint: str, answer: object) -> bytes | None:
    """A whole 2xx answer as the events a stream of it would have sent; None if it is not that endpoint's answer."""
    if not isinstance(answer, dict):
        return None
    if endpoint == "/v1/chat/completions" and isinstance(answer.get("choices"), list):
        return _event(_chunk_of(answer)) + DONE
    if endpoint == "/v1/responses" and answer.get("object") == "response":
        return b"event: response.completed\n" + _event(
            {"type": "response.completed", "sequence_number": 0, "response": answer}
        )
    return None


DONE = b"data: [DONE]\n\n"


def looks_like_events(raw: bytes) -> bool:
    """Whether a body is server-sent events, whatever its Content-Type said (a JSON answer starts with '{')."""
    return raw.lstrip().startswith((b"data:", b"event:", b":"))


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _chunk_of(completion: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as one chat.completion.chunk: each choice's message becomes its delta."""
    choices = [
        {
            "index": choice.get("index", position),
            "delta": _delta(choice.get("message")),
            "logprobs": choice.get("logprobs"),
            "finish_reason": choice.get("finish_reason"),
        }
        for position, choice in enumerate(completion["choices"])
        if isinstance(choice, dict)
    ]
    chunk = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": choices,
    }
    chunk.update({key: completion[key] for key in ("usage", "system_fingerprint") if completion.get(key) is not None})
    return chunk


def _delta(message: object) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {}
    delta = {key: value for key, value in message.items() if value is not None}
    calls = delta.get("tool_calls")
    if isinstance(calls, list):  # a streamed tool call says which one it extends
        delta["tool_calls"] = [{**call, "index": i} if isinstance(call, dict) else call for i, call in enumerate(calls)]
    return delta
