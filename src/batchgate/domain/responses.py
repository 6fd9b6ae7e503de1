"""The Responses API on a chat model: a /v1/responses body as chat messages, a chat answer as a response.

Text in, `output_text` out; tools, files and images are beyond a local chat model and are refused.
"""

from __future__ import annotations

import time
from typing import Any

from batchgate import ids
from batchgate.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text")
SAMPLING = ("temperature", "top_p", "seed", "stop")


def response_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    messages = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    source = body.get("input")
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    elif isinstance(source, list) and source:
        messages.extend(_message(item, i) for i, item in enumerate(source))
    else:
        raise InvalidRequest("'input' must be a string or a non-empty array of messages.", param="input")
    chat = {"messages": messages, **{k: body[k] for k in SAMPLING if k in body}}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


def _message(item: object, index: int) -> dict[str, Any]:
    where = f"input[{index}]"
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        raise InvalidRequest(f"'{where}' must be a message with a 'role' and text 'content'.", param=where)
    role = "system" if item.get("role") == "developer" else item.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"'{where}.role' must be one of {', '.join(ROLES)}.", param=f"{where}.role")
    return {"role": role, "content": _text(item.get("content"), f"{where}.content")}


def _text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in TEXT_PARTS and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(p["text"] for p in content)
    raise InvalidRequest(
        f"'{where}' must be text or a list of input_text parts; the local model reads text only.", param=where
    )


def chat_to_response(chat: dict[str, Any], body: dict[str, Any], model: str) -> dict[str, Any]:
    choice = chat["choices"][0]
    text = choice["message"].get("content") or ""
    usage = chat.get("usage") or {}
    truncated = choice.get("finish_reason") == "length"
    input_tokens, output_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {
        "id": ids.new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if truncated else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "error": None,
        "model": model,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "output": [
            {
                "type": "message",
                "id": ids.new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
