"""Builders of JSONL request lines for the validator's tests."""

from __future__ import annotations

import orjson

CHAT = "/v1/chat/completions"
LIMIT = 10_000


def line_of(**fields) -> bytes:
    return orjson.dumps(fields)


def valid(**changes) -> dict:
    obj = {
        "custom_id": "req-1",
        "method": "POST",
        "url": CHAT,
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    obj.update(changes)
    return obj


def without(key: str) -> dict:
    obj = valid()
    del obj[key]
    return obj
