"""A plan before the run: what a batch's lines hold, and how much of it a warm prefix cache could skip.

Fed one request body at a time, a PlanTally counts the lines, their estimated input tokens (characters/4,
like the rate limits), and their prefix groups (domain/prefix.py): the distinct keys, the groups (keys of
two lines or more), and the tokens in shared prefixes. A group of n lines whose prefix is p tokens could
skip (n − 1) × p of them with a warm cache: every line's prefix but the first's.

Memory is bounded: at most `max_keys` keys are tracked. When the table is full, the keys seen once are
dropped (a group's lines recur, a one-off does not); a dropped key seen again counts as new, and a line
that finds no room is counted without its group. Either makes the figures approximate: lines and input
tokens stay exact, groups and shared tokens can only be undercounted, distinct keys only overcounted.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from batchgate.domain.limits import estimate_input_tokens
from batchgate.domain.prefix import prefix_key, prefix_material, prefix_tokens

MAX_KEYS = 100_000  # 8-byte keys and their counts: about 10 MB at most, whatever the file's size
# A full table is swept of its one-off keys only when they are at least this share of it, so each
# sweep frees room for many lines and costs O(1) per line over the run.
SWEEP_WHEN_ONE_OFFS = 0.25


@dataclass(frozen=True, slots=True)
class Plan:
    """What a batch's lines hold, for a person deciding whether to run it."""

    endpoint: str
    lines: int
    input_tokens: int  # estimated: the prompts' characters / 4
    prefix_keys: int  # distinct prefix keys (lines with no prompt to share have none)
    prefix_groups: int  # keys of two lines or more
    lines_in_groups: int
    shared_prefix_tokens: int  # what a warm cache could skip: (n − 1) × p over the groups
    approximate: bool  # more keys than were tracked: see the module's docstring

    @property
    def shared_prefix_share(self) -> float:
        """The share of the input tokens that sit in shared prefixes."""
        return round(self.shared_prefix_tokens / self.input_tokens, 4) if self.input_tokens else 0.0

    def to_wire(self) -> dict[str, object]:
        return {
            "object": "batch.plan",
            "endpoint": self.endpoint,
            "lines": self.lines,
            "estimated_input_tokens": self.input_tokens,
            "prefix_keys": self.prefix_keys,
            "prefix_groups": self.prefix_groups,
            "lines_in_groups": self.lines_in_groups,
            "shared_prefix_tokens": self.shared_prefix_tokens,
            "shared_prefix_share": self.shared_prefix_share,
            "approximate": self.approximate,
        }

    def describe(self) -> str:
        """One line for people."""
        approximate = " (approximate: more prefix keys than tracked)" if self.approximate else ""
        return (
            f"plan: {self.lines} requests, ~{self.input_tokens} input tokens; {self.prefix_groups} prefix "
            f"group(s) of {self.prefix_keys} key(s) hold {self.lines_in_groups} lines; ~{self.shared_prefix_tokens} "
            f"tokens ({self.shared_prefix_share:.1%}) in shared prefixes a warm cache could skip{approximate}"
        )


class PlanTally:
    """Fed the request bodies of a file (`add`, or `add_lines` for raw lines already judged good), then `plan()`."""

    def __init__(self, endpoint: str, max_keys: int = MAX_KEYS):
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self.endpoint = endpoint
        self.max_keys = max_keys
        self.lines = 0
        self.input_tokens = 0
        self.prefix_keys = 0
        self.prefix_groups = 0
        self.lines_in_groups = 0
        self.shared_prefix_tokens = 0
        self.approximate = False
        self._counts: dict[bytes, int] = {}  # lines seen per tracked key
        self._prefix_sizes: dict[bytes, int] = {}  # prefix tokens per group, worked out once
        self._one_offs = 0  # tracked keys seen once

    def add(self, body: dict[str, Any]) -> None:
        self.lines += 1
        tokens = estimate_input_tokens(body)
        self.input_tokens += tokens
        key = prefix_key(self.endpoint, body)
        if key is None:
            return
        seen = self._counts.get(key)
        if seen is None:
            self.prefix_keys += 1
            if self._room():
                self._counts[key] = 1
                self._one_offs += 1
            return
        self._counts[key] = seen + 1
        if seen == 1:
            self._one_offs -= 1
            self.prefix_groups += 1
            self.lines_in_groups += 1  # the group's first line, counted now it has a sibling
            self._prefix_sizes[key] = prefix_tokens(prefix_material(self.endpoint, body))
        self.lines_in_groups += 1
        # A sibling skips the shared prefix, never more than its own prompt.
        self.shared_prefix_tokens += min(self._prefix_sizes[key], tokens)

    def add_lines(self, raws: Iterable[bytes]) -> None:
        """Raw JSONL request lines, each already judged a good request (an object with a `body` object)."""
        for raw in raws:
            self.add(orjson.loads(raw)["body"])

    def _room(self) -> bool:
        """Whether a new key may be tracked, sweeping the one-off keys from a full table if enough are there."""
        if len(self._counts) < self.max_keys:
            return True
        self.approximate = True
        if self._one_offs < max(1, self.max_keys * SWEEP_WHEN_ONE_OFFS):
            return False
        self._counts = {key: count for key, count in self._counts.items() if count > 1}
        self._one_offs = 0
        return True

    def plan(self) -> Plan:
        return Plan(
            self.endpoint,
            self.lines,
            self.input_tokens,
            self.prefix_keys,
            self.prefix_groups,
            self.lines_in_groups,
            self.shared_prefix_tokens,
            self.approximate,
        )
