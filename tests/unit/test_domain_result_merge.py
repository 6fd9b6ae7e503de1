"""batchgate.domain.result_merge: pairing input lines with output/error lines, a result's `line`, retry metadata."""

from __future__ import annotations

import orjson
import pytest

from batchgate.domain.result_merge import InputLine, ResultLine, matched_lines, retry_metadata, with_line


async def _iterate(items):
    for item in items:
        yield item


async def _pairs(inputs, *files):
    return [(i.line, r.raw) async for i, r in matched_lines(_iterate(inputs), *(_iterate(f) for f in files))]


async def test_each_input_line_meets_its_own_result_in_either_file():
    inputs = [InputLine(n, f"c{n}", b"in%d" % n) for n in (1, 2, 4, 5, 6)]  # line 3 is blank
    output = [ResultLine("c1", b"o1"), ResultLine("c5", b"o5")]
    errors = [ResultLine("c2", b"e2"), ResultLine("c4", b"e4"), ResultLine("c6", b"e6")]
    assert await _pairs(inputs, output, errors) == [(1, b"o1"), (2, b"e2"), (4, b"e4"), (5, b"o5"), (6, b"e6")]


async def test_lines_no_file_holds_are_passed_over():
    inputs = [InputLine(n, f"c{n}", b"") for n in range(1, 5)]
    assert await _pairs(inputs, [ResultLine("c3", b"e3")]) == [(3, b"e3")]
    assert await _pairs(inputs) == []


@pytest.mark.parametrize("record", [b'{"id":"r","custom_id":"a","response":null}', b"{}", b'{ "a": 1 }\r'])
def test_with_line_adds_the_line_and_keeps_the_rest(record):
    extended = orjson.loads(with_line(record, 42))
    assert extended == {**orjson.loads(record), "line": 42}


def test_with_line_refuses_what_is_not_an_object():
    with pytest.raises(ValueError):
        with_line(b"[1]", 1)


def test_retry_metadata_keeps_the_old_pairs_and_names_the_old_batch():
    assert retry_metadata(None, "batch_a", 16) == {"retry_of": "batch_a"}
    assert retry_metadata({"k": "v"}, "batch_a", 16) == {"k": "v", "retry_of": "batch_a"}
    assert retry_metadata({"retry_of": "batch_0", "k": "v"}, "batch_a", 16) == {"k": "v", "retry_of": "batch_a"}


def test_retry_metadata_that_would_not_fit_keeps_the_first_pairs_in_key_order():
    full = {f"k{i:02}": "v" for i in range(15, -1, -1)}  # 16 pairs, stored in reverse order
    kept = retry_metadata(full, "batch_a", 16)
    assert len(kept) == 16 and kept["retry_of"] == "batch_a"
    assert "k15" not in kept and all(f"k{i:02}" in kept for i in range(15))
    # A full set that already names a retry keeps every other pair.
    assert retry_metadata({**dict(list(full.items())[:15]), "retry_of": "batch_0"}, "batch_a", 16)["retry_of"] == (
        "batch_a"
    )
