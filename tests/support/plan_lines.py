"""A batch input of prefix groups, for the tests of the plan (validate and dry_run alike)."""

from __future__ import annotations

CHAT = "/v1/chat/completions"
# Long enough that its share of each line's tokens is plain to see.
SYSTEM = "You label customer reviews as positive, negative or mixed. Answer with the label alone. " * 8


def system_line(custom_id: str, text: str, system: str = SYSTEM, model: str = "m") -> dict:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {"model": model, "messages": messages}}


def grouped_lines(group: int = 10, alone: int = 2) -> list[dict]:
    """`group` lines sharing one system prompt, then `alone` lines with prompts of their own."""
    shared = [system_line(f"g{i}", f"review {i}") for i in range(group)]
    return shared + [system_line(f"a{i}", "review", system=f"Another task, number {i}.") for i in range(alone)]
