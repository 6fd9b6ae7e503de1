"""Consistent hashing with bounded loads: a group keeps its member, moves only when it must, and no member
holds more than its bound."""

from __future__ import annotations

import hashlib
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from batchgate.domain.affinity import Ring, bound, choose

NAMES = ("gpu-a", "gpu-b", "gpu-c", "gpu-d")


def key(i: int) -> bytes:
    return hashlib.blake2b(f"group {i}".encode(), digest_size=8).digest()


def idle(ring: Ring) -> tuple[list[int], list[bool]]:
    return [0] * len(ring.names), [True] * len(ring.names)


def test_the_same_key_goes_to_the_same_member_every_time_and_in_every_ring_of_the_same_members():
    ring, again = Ring(NAMES), Ring(NAMES)
    loads, eligible = idle(ring)
    for i in range(50):
        picked = choose(ring, key(i), loads, eligible, 1.25)
        assert picked == choose(ring, key(i), loads, eligible, 1.25) == again.owner(key(i)) == ring.owner(key(i))


def test_keys_spread_over_the_members():
    ring = Ring(NAMES)
    owners = Counter(ring.names[ring.owner(key(i))] for i in range(4000))
    assert set(owners) == set(NAMES)
    assert all(700 <= count <= 1300 for count in owners.values()), owners  # 1000 each if perfectly even


def test_the_walk_meets_every_member_once():
    ring = Ring(NAMES)
    for i in range(20):
        assert sorted(ring.clockwise(key(i))) == [0, 1, 2, 3]


def test_a_member_that_may_not_take_requests_is_skipped_for_the_next_on_the_ring():
    ring = Ring(NAMES)
    loads, _ = idle(ring)
    for i in range(50):
        first, second = list(ring.clockwise(key(i)))[:2]
        out = [index != first for index in range(len(NAMES))]
        assert choose(ring, key(i), loads, out, 1.25) == second


def test_a_member_over_its_bound_is_skipped_for_the_next_on_the_ring():
    ring = Ring(NAMES)
    for i in range(50):
        first, second = list(ring.clockwise(key(i)))[:2]
        loads = [2] * len(NAMES)
        loads[first] = 5  # 11 held, 12 with the new one: mean 3, bound ceil(1.25 × 3) = 4
        assert bound(loads, [True] * 4, 1.25) == 4
        assert choose(ring, key(i), loads, [True] * 4, 1.25) == second
        loads[first] = 3  # 9 held, mean 2.5, bound 4: one more keeps it within, so the group stays
        assert choose(ring, key(i), loads, [True] * 4, 1.25) == first


def test_no_eligible_member_chooses_none():
    ring = Ring(NAMES)
    assert choose(ring, key(1), [0, 0, 0, 0], [False] * 4, 1.25) is None


def test_removing_a_member_moves_only_its_keys():
    full, smaller = Ring(NAMES), Ring(NAMES[:3])
    moved = 0
    for i in range(2000):
        before = full.names[full.owner(key(i))]
        after = smaller.names[smaller.owner(key(i))]
        if before != "gpu-d":
            assert after == before
        else:
            moved += 1
    assert moved > 0


def test_adding_a_member_takes_keys_only_for_itself():
    small, larger = Ring(NAMES[:3]), Ring(NAMES)
    for i in range(2000):
        after = larger.names[larger.owner(key(i))]
        assert after in (small.names[small.owner(key(i))], "gpu-d")


@given(
    loads=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    eligible=st.lists(st.booleans(), min_size=8, max_size=8),
    factor=st.floats(1.0, 3.0),
    group=st.integers(0, 10_000),
)
def test_the_chosen_member_stays_within_the_bound_and_one_is_found_whenever_any_is_eligible(
    loads, eligible, factor, group
):
    eligible = eligible[: len(loads)]
    ring = Ring([f"m{i}" for i in range(len(loads))], points=20)
    picked = choose(ring, key(group), loads, eligible, factor)
    if not any(eligible):
        assert picked is None
        return
    assert picked is not None and eligible[picked]
    assert loads[picked] + 1 <= bound(loads, eligible, factor)
    # and it is the first such member clockwise: every one met before it was ineligible or full
    for index in ring.clockwise(key(group)):
        if index == picked:
            break
        assert not eligible[index] or loads[index] + 1 > bound(loads, eligible, factor)


@given(
    groups=st.lists(st.integers(0, 30), min_size=1, max_size=300),
    members=st.integers(1, 6),
    factor=st.floats(1.0, 2.0),
)
def test_placing_requests_one_by_one_keeps_every_load_within_ceil_factor_times_the_mean(groups, members, factor):
    ring = Ring([f"m{i}" for i in range(members)], points=20)
    loads = [0] * members
    for placed, group in enumerate(groups, start=1):
        picked = choose(ring, key(group), loads, [True] * members, factor)
        assert picked is not None
        loads[picked] += 1
        assert max(loads) <= -(-factor * placed // members) + 1e-9  # ceil(factor × mean)
