"""Groups taking turns (domain/group_turns.py): one line of a group out while another group's line can go."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchgate.domain.group_turns import GroupTurns, LinesOut


def test_a_free_groups_line_goes_before_a_second_line_of_a_busy_group():
    turns: GroupTurns[str] = GroupTurns(LinesOut())
    for group, item in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"), ("c", "c1")]:
        turns.put(group, item)
    assert turns.take_free() == ("a", "a1")
    assert turns.take_free() == ("b", "b1"), "a2 waits: a has a line out"
    assert turns.take_free() == ("c", "c1")
    assert turns.take_free() is None and turns.waiting == 2 and turns.out.total == 3


def test_an_answer_frees_its_group_for_its_next_line_in_file_order():
    turns: GroupTurns[str] = GroupTurns(LinesOut())
    for group, item in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("b", "b2")]:
        turns.put(group, item)
    assert [turns.take_free(), turns.take_free(), turns.take_free()] == [("a", "a1"), ("b", "b1"), None]
    turns.out.end("b")
    assert turns.take_free() == ("b", "b2"), "b is free, a is not"
    turns.out.end("a")
    assert [turns.take_free(), turns.take_free()] == [("a", "a2"), None]


def test_lines_out_are_shared_between_the_shards_of_a_batch():
    out = LinesOut()
    one: GroupTurns[str] = GroupTurns(out)
    two: GroupTurns[str] = GroupTurns(out)
    one.put("a", "a1")
    two.put("a", "a7")
    two.put("b", "b8")
    assert one.take_free() == ("a", "a1")
    assert two.take_free() == ("b", "b8"), "a has a line out in the other shard"
    one.out.end("a")
    assert two.take_free() == ("a", "a7") and out.total == 2


def test_take_any_gives_the_line_of_the_group_that_waited_longest_even_if_busy():
    turns: GroupTurns[str] = GroupTurns(LinesOut())
    for group, item in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")]:
        turns.put(group, item)
    turns.take_free(), turns.take_free()
    assert turns.take_free() is None
    assert turns.take_any() == ("a", "a2") and turns.out.total == 3
    assert turns.take_any() == ("b", "b2")
    assert turns.take_any() is None and turns.waiting == 0


def test_a_line_given_back_is_the_next_of_its_group():
    turns: GroupTurns[str] = GroupTurns(LinesOut())
    turns.put("a", "a1")
    turns.put("a", "a2")
    group, item = turns.take_free()
    turns.give_back(group, item)
    assert turns.out.total == 0 and turns.waiting == 2
    assert turns.take_free() == ("a", "a1")


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60))
def test_every_line_is_taken_exactly_once_and_a_free_take_never_doubles_a_group(script):
    """Lines put, taken (free first, else any) and finished in any order: each comes out once, in file order
    within its group, and take_free never hands out a line of a group that has one out."""
    turns: GroupTurns[tuple[int, int]] = GroupTurns(LinesOut())
    out: list[int] = []
    taken: list[tuple[int, int]] = []
    for n, (group, finish) in enumerate(script):
        turns.put(group, (group, n))
        if finish and out:
            turns.out.end(out.pop(0))
        if (got := turns.take_free()) is not None:
            assert got[0] not in out
        else:
            got = turns.take_any()
        assert got is not None
        out.append(got[0])
        taken.append(got[1])
    while (got := turns.take_free() or turns.take_any()) is not None:
        taken.append(got[1])
    assert sorted(taken, key=lambda item: item[1]) == [(g, n) for n, (g, _) in enumerate(script)]
    for group in range(5):
        mine = [n for g, n in taken if g == group]
        assert mine == sorted(mine)
    assert turns.waiting == 0
