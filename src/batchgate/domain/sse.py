"""Server-sent events for MKA1's /chat/completions/stream, which names every event.

OpenAI-style streams send bare `data:` events and end with `data: [DONE]`; MKA1's stream path
sends `event: message` for each chunk, `event: done` at the end and `event: error` for a failure.
"""

from __future__ import annotations

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
