"""Duplicate requests: byte-identical bodies in one batch that may be sent once and answered for each line.

Only a batch that asks for it (metadata `batchgate_deduplicate: "true"`) and only a body that asks for a
repeatable answer (`temperature` 0, or a `seed`): a user who repeats a line on purpose (to sample an
answer's spread, or to load an upstream) must get the repeats sent. docs/caching.md says more. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

DEDUPLICATE = "batchgate_deduplicate"  # the metadata key that turns it on, with the value "true"
KEY_BYTES = 16


def wants_deduplication(metadata: Mapping[str, str] | None) -> bool:
    return bool(metadata) and str(metadata.get(DEDUPLICATE, "")).strip().lower() == "true"  # type: ignore[union-attr]


def duplicate_key(body: dict[str, Any]) -> bytes | None:
    """The identity of a body whose answer may serve its byte-identical repeats; None if it must be sent itself."""
    if not _repeatable(body):
        return None
    return hashlib.blake2b(orjson.dumps(body), digest_size=KEY_BYTES).digest()


def _repeatable(body: dict[str, Any]) -> bool:
    temperature = body.get("temperature")
    seed = body.get("seed")
    zero = isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 0
    seeded = isinstance(seed, int) and not isinstance(seed, bool)
    return zero or seeded
