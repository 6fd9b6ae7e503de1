"""batchgate.domain.nesting: one depth rule for request bodies and batch lines."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgate.domain.lines import LineError, parse_line
from batchgate.domain.nesting import DEPTH_CEILING, depth_exceeds, too_deep
from batchgate.errors import ConfigError
from batchgate.settings import Settings
from tests.support.request_lines import CHAT, LIMIT, line_of, valid


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    "levels, limit, expected",
    [(0, 1, False), (1, 1, False), (2, 1, True), (64, 64, False), (65, 64, True), (1000, 64, True)],
)
def test_depth_counts_arrays_and_objects_within_one_another(levels, limit, expected):
    raw = nested(levels) if levels else b"1"
    assert too_deep(raw, orjson.loads(raw), limit) is expected
    assert depth_exceeds(orjson.loads(raw), limit) is expected


def test_many_siblings_are_not_depth_and_brackets_in_strings_nest_nothing():
    wide = orjson.dumps({"a": [{"b": [1]} for _ in range(500)], "s": "[" * 500})
    assert not too_deep(wide, orjson.loads(wide), 4)


def test_a_too_deep_line_is_a_line_error_with_its_line_number():
    raw = line_of(**valid(body={"model": "m", "messages": orjson.loads(nested(100))}))
    with pytest.raises(LineError) as caught:
        parse_line(raw, 7, CHAT, LIMIT, max_depth=64)
    assert (caught.value.line, caught.value.code) == (7, "json_too_deep")
    assert "64 levels" in caught.value.message
    assert parse_line(raw, 7, CHAT, LIMIT).custom_id == "req-1"  # a line validated before is read as it is


def test_the_depth_setting_stays_below_what_can_be_sent_on():
    with pytest.raises(ConfigError, match="max_json_depth"):
        Settings.load({"max_json_depth": DEPTH_CEILING + 1}, env={})
    assert Settings.load({"max_json_depth": DEPTH_CEILING}, env={}).max_json_depth == DEPTH_CEILING


def depth(value: object) -> int:
    """The reference: how many levels of arrays and objects `value` nests, by plain recursion."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(value=json_values, limit=st.integers(0, 8))
def test_the_walk_agrees_with_plain_recursion_at_every_limit(value, limit):
    """The shortcut for shallow objects included: it may only settle what the full walk would."""
    assert depth_exceeds(value, limit) is (depth(value) > limit)


@pytest.mark.parametrize("limit", [2, 3, 4, 5])
def test_a_body_of_messages_is_settled_at_its_true_depth(limit):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}  # 3 levels
    parts = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}  # 5 levels
    assert depth_exceeds(body, limit) is (limit < 3)
    assert depth_exceeds(parts, limit) is (limit < 5)
