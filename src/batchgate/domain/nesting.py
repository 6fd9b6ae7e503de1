"""How deeply JSON nests: the one rule for request bodies and batch lines.

orjson reads up to 1024 levels but writes at most 254, so a document deeper than that could be
accepted and then fail when it is sent on. A limit well below both keeps every accepted request sendable.
"""

from __future__ import annotations

from typing import Any

# The deepest limit a setting may choose: a line's body sits inside the line, the line inside a result,
# and all of it must stay below the 254 levels orjson writes.
DEPTH_CEILING = 200


def too_deep(raw: bytes, value: object, limit: int) -> bool:
    """Whether `value` (parsed from `raw`) nests arrays and objects more than `limit` levels deep.

    Counting brackets in the bytes costs less than walking the value, and a document with no more
    opening brackets than the limit cannot be deeper: most lines are settled without a walk.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return depth_exceeds(value, limit)


def depth_exceeds(value: object, limit: int) -> bool:
    """Walk `value`, stopping at the first container past `limit` levels (so recursion stays within it)."""
    if type(value) is not dict and type(value) is not list:
        return False
    if limit >= 3 and type(value) is dict and within_three(value):
        return False
    return limit == 0 or _nests_more(value, limit - 1)


def within_three(container: dict[Any, Any]) -> bool:
    """Whether an object nests at most three levels: a request body's usual shape, such as a list of messages
    that each hold strings, settled in one call where the walk below makes a call per container.

    False only means "not settled here": the walk decides.
    """
    for child in container.values():
        kind = type(child)
        if kind is list:
            for item in child:
                kind = type(item)
                if kind is dict:
                    for leaf in item.values():
                        kind = type(leaf)
                        if kind is dict or kind is list:
                            return False
                elif kind is list:
                    return False
        elif kind is dict:
            for leaf in child.values():
                kind = type(leaf)
                if kind is dict or kind is list:
                    return False
    return True


def _nests_more(container: dict[Any, Any] | list[Any], levels_left: int) -> bool:
    for child in container.values() if type(container) is dict else container:
        if (type(child) is dict or type(child) is list) and (levels_left == 0 or _nests_more(child, levels_left - 1)):
            return True
    return False


def too_deep_message(limit: int) -> str:
    return f"nests arrays and objects more than {limit} levels deep; flatten it"
