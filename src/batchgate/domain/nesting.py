"""How deeply JSON nests: the one rule for request bodies and batch lines.

orjson reads up to 1024 levels but writes at most 254, so a document deeper than that could be
accepted and then fail when it is sent on. A limit well below both keeps every accepted request sendable.
"""

from __future__ import annotations

_OPENERS = (b"[", b"{")
# The deepest limit a setting may choose: a line's body sits inside the line, the line inside a result,
# and all of it must stay below the 254 levels orjson writes.
DEPTH_CEILING = 200


def too_deep(raw: bytes, value: object, limit: int) -> bool:
    """Whether `value` (parsed from `raw`) nests arrays and objects more than `limit` levels deep.

    Counting brackets in the bytes is far cheaper than walking the value, and a document with no more
    opening brackets than the limit cannot be deeper: most lines are settled without a walk.
    """
    if sum(raw.count(opener) for opener in _OPENERS) <= limit:
        return False
    return depth_exceeds(value, limit)


def depth_exceeds(value: object, limit: int) -> bool:
    """Walk `value` (without recursion, so any depth is safe) and stop at the first level past `limit`."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def too_deep_message(limit: int) -> str:
    return f"nests arrays and objects more than {limit} levels deep; flatten it"
