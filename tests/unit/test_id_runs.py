"""Custom_ids that count up, kept as ranges (domain/id_runs.py), and the repeat check built on them (UniqueIds).

The ranges are a shortcut of the upload check: whatever the ids, a repeat must never be missed, and a
file whose ids count up without a repeat must not be sent to the batch's own check for nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgate.api.upload_checker import RepeatCheck
from batchgate.domain.id_runs import Run, Taken, counted_run
from batchgate.scratch_ids import UniqueIds


def test_ids_that_count_up_are_a_run():
    assert counted_run([f"request-{n}" for n in range(1, 101)]) == Run("request-", 1, 101, 0)


def test_a_run_crosses_into_more_digits():
    ids = [f"r{n}" for n in range(95, 105)]
    assert counted_run(ids) == Run("r", 95, 105, 0)
    assert Run("r", 95, 105, 0).ids(95, 105) == ids


def test_zero_padded_ids_keep_their_width_then_grow_past_it():
    ids = [f"task-{n:02d}" for n in range(5, 105)]  # task-05 … task-99, task-100 … task-104
    run = counted_run(ids)
    assert run == Run("task-", 5, 105, 2) and run.ids(5, 105) == ids
    assert counted_run(["t0", "t1", "t2"]) == Run("t", 0, 3, 1)
    assert counted_run(["007", "008"]) == Run("", 7, 9, 3)


@pytest.mark.parametrize(
    "ids",
    [
        [],
        ["a1", "a2", "a4"],  # a gap
        ["a1", "a2", "a2"],  # a repeat inside
        ["a2", "a1"],  # counting down
        ["a1", "b2"],  # another prefix
        ["a01", "a2"],  # written another way
        ["a1", "a02"],
        ["x", "y"],  # no number
        ["a١", "a٢"],  # digits, but not ASCII ones
        ["n" + "1" * 19, "n" + "1" * 18 + "2"],  # past machine size
    ],
)
def test_ids_that_do_not_count_up_are_no_run(ids):
    assert counted_run(ids) is None


def test_a_single_id_with_a_number_is_a_run_of_one():
    assert counted_run(["line-42"]) == Run("line-", 42, 43, 0)


def test_taken_refuses_a_run_that_meets_one_of_its_prefix():
    taken = Taken()
    assert taken.take(Run("r", 10, 20, 0))
    assert taken.take(Run("q", 10, 20, 0))  # another prefix
    assert not taken.take(Run("r", 19, 25, 0))
    assert not taken.take(Run("r", 0, 11, 0))
    assert not taken.take(Run("r", 12, 13, 0))
    assert not taken.take(Run("r", 15, 16, 3))  # r015 is not r15, but the numbers meet: a repeat, to be safe
    assert taken.take(Run("r", 0, 10, 0)) and taken.take(Run("r", 20, 30, 0))
    assert list(taken) == [Run("r", 0, 30, 0), Run("q", 10, 20, 0)] and taken.ranges == 2


def test_taken_merges_only_runs_written_alike():
    taken = Taken()
    assert taken.take(Run("r", 0, 10, 0)) and taken.take(Run("r", 10, 20, 2)) and taken.take(Run("r", 30, 40, 2))
    assert taken.take(Run("r", 20, 30, 2))
    assert list(taken) == [Run("r", 0, 10, 0), Run("r", 10, 40, 2)] and taken.ranges == 2


# --- the repeat check: runs counted, the on-disk set once a group does not count up ---------------------

families = st.sampled_from(["r", "req-", ""])
counting = st.builds(
    lambda prefix, first, count, padded: [
        prefix + (str(n).zfill(3) if padded else str(n)) for n in range(first, first + count)
    ],
    families,
    st.integers(0, 60),
    st.integers(1, 30),
    st.booleans(),
)
stray = st.lists(st.sampled_from(["r5", "r05", "x", "req-7", "12", "r", "r٣"]), min_size=1, max_size=4)
groups = st.lists(st.one_of(counting, counting, stray), max_size=8)


def any_repeat(groups: list[list[str]]) -> bool:
    ids = [custom_id for group in groups for custom_id in group]
    return len(set(ids)) < len(ids)


def written(groups: list[list[str]]) -> set[tuple[str, int]]:
    """Each id's prefix and how many digits it pads its number to (0: not padded)."""
    ways = set()
    for custom_id in (custom_id for group in groups for custom_id in group):
        prefix = custom_id.rstrip("0123456789")
        digits = custom_id[len(prefix) :]
        ways.add((prefix, len(digits) if digits[:1] == "0" and len(digits) > 1 else 0))
    return ways


@settings(max_examples=150, deadline=None)
@given(groups)
def test_a_repeat_is_never_missed(tmp_path_factory, groups):
    check = RepeatCheck(UniqueIds(tmp_path_factory.mktemp("ids")))
    try:
        for group in groups:
            check.add(group)
        found = check.finish()
    finally:
        check.close()
    if any_repeat(groups):
        assert found
    # A false repeat is only allowed where one prefix's numbers are written both ways (r5 and r005).
    if len({prefix for prefix, _ in written(groups)}) == len(written(groups)):
        assert found == any_repeat(groups)


def test_ids_that_count_up_then_stop_counting_are_checked_against_the_runs(tmp_path):
    ids = UniqueIds(tmp_path)
    try:
        assert ids.counted([f"request-{n}" for n in range(1, 10_001)])
        assert ids.counted([f"request-{n}" for n in range(10_001, 20_001)])
        assert ids.counted(["uuid-a", "uuid-b"]) is None
        assert ids.add(["uuid-a", "uuid-b"])  # every id so far goes into the set first
        assert ids.counted(["request-20001"]) is None  # once in the set, always
        assert not ids.add(["request-15000"])
    finally:
        ids.close()


def test_past_the_bound_of_ranges_the_set_takes_over(tmp_path, monkeypatch):
    monkeypatch.setattr("batchgate.scratch_ids.MAX_RANGES", 3)
    ids = UniqueIds(tmp_path)
    try:
        assert all(ids.counted([f"r{n}", f"r{n + 1}"]) for n in range(0, 30, 10))  # three runs with gaps
        assert ids.counted(["r30", "r31"]) is None
        assert ids.add(["r30", "r31"])
        assert not ids.add(["r1"]) and not ids.add(["r21"])
    finally:
        ids.close()
