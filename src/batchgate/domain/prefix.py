"""Prefix groups: which requests of a batch start alike, so an upstream's prefix cache can serve them.

An inference server (vLLM, SGLang, llama.cpp) keeps the computed start of recent prompts; a request
whose prompt begins the same way skips that part of its prefill. Lines with the same prefix key are a
prefix group. The rule, per endpoint:

- chat: the model, `tools`, and every message but the last (the system prompt and the few-shot turns
  that all lines repeat); a lone message counts by the first PREFIX_CHARS characters of its text;
- responses: the model, `instructions`, `tools`, and the `input` messages but the last (a string
  `input` by its first PREFIX_CHARS characters);
- embeddings and the rest: the model and the first PREFIX_CHARS characters of `input` / `prompt`.

A key is only a grouping hint: two lines that share a key but not a cache entry cost nothing more
than they would in file order. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from batchgate.domain.limits import CHARS_PER_TOKEN

PREFIX_CHARS = 512  # the head of a lone prompt that names its group: long enough to be a shared instruction
KEY_BYTES = 8

Material = Callable[[dict[str, Any]], object]


def prefix_key(endpoint: str, body: dict[str, Any]) -> bytes | None:
    """The prefix group of a request body (KEY_BYTES bytes), or None when it has no prompt to share."""
    shared = prefix_material(endpoint, body)
    if shared is None:
        return None
    return hashlib.blake2b(orjson.dumps([body.get("model"), shared]), digest_size=KEY_BYTES).digest()


def prefix_material(endpoint: str, body: dict[str, Any]) -> object | None:
    """What the requests of a group have in common, as plain JSON values (None: nothing)."""
    material = MATERIALS.get(endpoint, _head_of_input)(body)
    return material if material else None


def prefix_tokens(material: object) -> int:
    """Estimated tokens of a prefix, by the same characters/4 rule as the rate limits."""
    return len(orjson.dumps(material)) // CHARS_PER_TOKEN


def _chat(body: dict[str, Any]) -> object:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    leading = messages[:-1] if len(messages) > 1 else [_head(messages[0])]
    return _with_tools(body, leading)


def _responses(body: dict[str, Any]) -> object:
    given = body.get("input")
    if isinstance(given, list) and len(given) > 1:
        leading: object = given[:-1]
    elif isinstance(given, list) and given:
        leading = [_head(given[0])]
    else:
        leading = _head_text(given)
    shared = [body.get("instructions"), leading] if body.get("instructions") else leading
    return _with_tools(body, shared)


def _head_of_input(body: dict[str, Any]) -> object:
    return _head_text(body.get("input", body.get("prompt")))


def _with_tools(body: dict[str, Any], leading: object) -> object:
    if not leading:
        return None
    tools = body.get("tools")
    return [tools, leading] if tools else leading


def _head(message: object) -> object:
    """A lone message, its text cut to PREFIX_CHARS (the rest is the line's own)."""
    if isinstance(message, dict):
        return {**message, "content": _head_text(message.get("content"))}
    return _head_text(message)


def _head_text(value: object) -> object:
    if isinstance(value, str):
        return value[:PREFIX_CHARS] or None
    if isinstance(value, list) and value:  # parts, or a list of token ids / strings
        return _head_text(value[0]) if isinstance(value[0], (str, dict)) else value[:PREFIX_CHARS]
    if isinstance(value, dict):
        return _head_text(value.get("text"))
    return None


# By endpoint; any other endpoint groups by the head of its `input` or `prompt`.
MATERIALS: dict[str, Material] = {"/v1/chat/completions": _chat, "/v1/responses": _responses}
