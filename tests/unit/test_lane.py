"""Lanes: windows that carry over between shards and pass their slots on when they retire."""

from __future__ import annotations

import asyncio

from batchgate.worker.lane import Lane


def send(lane: Lane, lines: int) -> None:
    for _ in range(lines):
        assert not lane.full()
        lane.take()


def test_a_lane_is_full_at_its_size():
    lane = Lane(2)
    send(lane, 2)
    assert lane.full()
    lane.give_back()
    assert not lane.full()


def test_a_retired_lane_passes_free_slots_at_once_and_busy_ones_as_they_free_up():
    ending, heir = Lane(4), Lane(4)
    send(ending, 3)
    send(heir, 4)
    ending.retire(heir)
    assert (ending.size, heir.size) == (3, 5), "the one free slot moves now"
    ending.give_back()
    ending.give_back()
    assert (ending.size, heir.size) == (1, 7)
    assert ending.in_flight + heir.in_flight <= ending.size + heir.size == 8, "never more in flight than the sum"
    ending.give_back()
    assert (ending.size, ending.in_flight, heir.size) == (0, 0, 8)


def test_slots_follow_a_chain_of_retired_lanes_to_the_one_still_sending():
    first, second, last = Lane(2), Lane(2), Lane(2)
    send(first, 2)
    first.retire(second)
    second.retire(last)
    assert (second.size, last.size) == (0, 4)
    first.give_back()
    assert (first.size, second.size, last.size) == (1, 0, 5)


async def test_a_growing_lane_wakes_the_shards_that_wait_on_it():
    ending, heir = Lane(1), Lane(1)
    send(heir, 1)
    wake = asyncio.Event()
    with heir.joined(wake):
        ending.retire(heir)
    assert wake.is_set() and not heir.full()
