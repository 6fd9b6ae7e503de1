"""upstream/door.py: the door of an upstream, on a real event loop (no network)."""

from __future__ import annotations

import asyncio
import time

import pytest

from batchgate.domain.fairness import Flow
from batchgate.domain.throttle import Asked
from batchgate.upstream.door import Door


async def hold(door: Door, flow: Flow, seconds: float, log: list, tokens: int = 0) -> None:
    await door.enter(flow, tokens)
    log.append((flow.batch, time.monotonic()))
    try:
        await asyncio.sleep(seconds)
    finally:
        door.leave()


async def test_never_more_in_flight_than_the_limit():
    door = Door("u", lambda: 3)
    peak = 0

    async def one():
        nonlocal peak
        await door.enter(Flow(), 0)
        peak = max(peak, door.in_flight)
        await asyncio.sleep(0.01)
        door.leave()

    await asyncio.gather(*(one() for _ in range(30)))
    assert peak == 3 and door.in_flight == 0 and door.waiting == 0


async def test_a_lowered_limit_holds_new_entries_until_enough_leave():
    limit = [4]
    door = Door("u", lambda: limit[0])
    for _ in range(4):
        await door.enter(Flow(), 0)
    limit[0] = 2
    late = asyncio.create_task(door.enter(Flow(), 0))
    await asyncio.sleep(0.01)
    door.leave()
    door.leave()
    await asyncio.sleep(0.01)
    assert not late.done()
    door.leave()
    await asyncio.wait_for(late, 1)
    assert door.in_flight == 2


async def test_turns_alternate_between_a_big_and_a_small_batch():
    door = Door("u", lambda: 1)
    log: list = []
    big = [asyncio.create_task(hold(door, Flow("t", "big"), 0.002, log)) for _ in range(40)]
    await asyncio.sleep(0)  # the big batch is queued first
    small = [asyncio.create_task(hold(door, Flow("t", "small"), 0.002, log)) for _ in range(5)]
    await asyncio.gather(*big, *small)
    order = [name for name, _ in log]
    last_small = max(i for i, name in enumerate(order) if name == "small")
    assert last_small <= 11, order  # served in alternation, not after the 40 big ones


async def test_requests_per_minute_make_the_extra_request_wait():
    door = Door("u", lambda: None, rpm=600)  # a burst of 600, then 10 a second
    started = time.monotonic()
    for _ in range(600):
        await door.enter(Flow(), 0)
    assert time.monotonic() - started < 0.5
    await door.enter(Flow(), 0)
    await door.enter(Flow(), 0)
    assert time.monotonic() - started >= 0.15


async def test_tokens_per_minute_wait_and_settle_refunds():
    door = Door("u", lambda: None, tpm=6000)  # 100 tokens a second
    await door.enter(Flow(), 6000)
    door.settle(estimated=6000, actual=5000)  # the answer used less: 1000 back
    started = time.monotonic()
    await door.enter(Flow(), 1000)
    assert time.monotonic() - started < 0.05
    await door.enter(Flow(), 20)
    assert time.monotonic() - started >= 0.15


async def test_a_pause_holds_everyone_then_one_probe_goes_alone():
    door = Door("u", lambda: 10)
    door.throttle.answered(time.monotonic(), time.monotonic(), True, True, Asked(spent_for=0.3))
    started = time.monotonic()
    waiting = [asyncio.create_task(door.enter(Flow(), 0)) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in waiting)
    await asyncio.sleep(0.2)
    assert sum(task.done() for task in waiting) == 1 and door.in_flight == 1  # the probe
    assert time.monotonic() - started >= 0.29
    door.throttle.answered(time.monotonic(), door.throttle.probe_sent, False, False, None)
    door.leave()  # the probe's answer came: everyone may go
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert door.in_flight == 2


async def test_a_waiter_cancelled_in_the_queue_takes_no_slot():
    door = Door("u", lambda: 1)
    await door.enter(Flow(), 0)
    gone = asyncio.create_task(door.enter(Flow("t", "gone"), 0))
    stays = asyncio.create_task(door.enter(Flow("t", "stays"), 0))
    await asyncio.sleep(0.01)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    door.leave()
    await asyncio.wait_for(stays, 1)
    assert door.in_flight == 1 and door.waiting == 0


async def test_the_fast_path_admits_without_waiting():
    door = Door("u", lambda: None)
    await door.enter(Flow(), 0)
    assert door.in_flight == 1 and door.waiting == 0


async def test_a_cold_door_opens_its_window_over_the_ramp_then_never_holds_back():
    door = Door("u", lambda: 4, ramp_seconds=0.2)
    started = time.monotonic()
    entered: list[float] = []

    async def one() -> None:
        await door.enter(Flow(), 0)
        entered.append(time.monotonic() - started)

    await asyncio.gather(*(one() for _ in range(4)))
    assert entered[0] < 0.02, "the first request of a cold door goes at once"
    assert entered[3] >= 0.14, "the fourth waits for three quarters of the ramp"
    assert entered == sorted(entered)
    door.leave()
    again = time.monotonic()
    await asyncio.wait_for(door.enter(Flow(), 0), 1)
    assert time.monotonic() - again < 0.02, "a door with requests in flight is open"


CALL = Flow("t", "sync", interactive=True)


async def queued(door: Door, flow: Flow, log: list) -> None:
    await door.enter(flow, 0)
    log.append(flow.batch)


async def test_the_next_free_slot_goes_to_an_interactive_call_before_waiting_batch_lines():
    door = Door("u", lambda: 1)  # no headroom: the call waits for a slot, but for the first one
    await door.enter(Flow("t", "big"), 0)
    log: list = []
    lines = [asyncio.create_task(queued(door, Flow("t", "big"), log)) for _ in range(5)]
    await asyncio.sleep(0)  # the batch lines wait first
    call = asyncio.create_task(queued(door, CALL, log))
    await asyncio.sleep(0)
    assert log == [] and door.waiting == 6
    door.leave()
    await asyncio.wait_for(call, 1)
    assert log == ["sync"], "the call took the freed slot, not the batch line that waited longer"
    for _ in lines:
        door.leave()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*lines), 1)
    assert log == ["sync"] + ["big"] * 5


async def test_an_interactive_call_enters_a_full_door_within_its_headroom():
    door = Door("u", lambda: 2, headroom=1)
    for _ in range(2):
        await door.enter(Flow("t", "big"), 0)
    log: list = []
    line = asyncio.create_task(queued(door, Flow("t", "big"), log))
    await asyncio.sleep(0)
    await asyncio.wait_for(door.enter(CALL, 0), 1)  # at once, though the door is full and a batch line waits
    assert door.in_flight == 3 and not line.done()
    second = asyncio.create_task(queued(door, CALL, log))
    await asyncio.sleep(0)
    assert not second.done(), "the headroom is spent"
    door.leave()  # a batch line's answer: room for the waiting call, still none for the batch line
    await asyncio.wait_for(second, 1)
    assert log == ["sync"] and door.in_flight == 3 and not line.done()
    door.leave()
    door.leave()  # now below the limit
    await asyncio.wait_for(line, 1)
    assert log == ["sync", "big"] and door.in_flight == 2


async def test_batch_lines_never_use_the_headroom():
    door = Door("u", lambda: 2, headroom=3)
    peak = 0

    async def one() -> None:
        nonlocal peak
        await door.enter(Flow("t", "big"), 0)
        peak = max(peak, door.in_flight)
        await asyncio.sleep(0)
        door.leave()

    await asyncio.gather(*(one() for _ in range(20)))
    assert peak == 2


async def test_the_ramp_of_a_cold_door_does_not_hold_back_an_interactive_call():
    door = Door("u", lambda: 4, ramp_seconds=60)
    await door.enter(Flow("t", "big"), 0)  # the door opens: the next batch line waits for the ramp
    line = asyncio.create_task(door.enter(Flow("t", "big"), 0))
    await asyncio.sleep(0)
    await asyncio.wait_for(door.enter(CALL, 0), 1)
    assert door.in_flight == 2 and not line.done()
    line.cancel()
    with pytest.raises(asyncio.CancelledError):
        await line


async def test_interactive_calls_of_tenants_take_turns_among_themselves():
    door = Door("u", lambda: 1)
    await door.enter(Flow("t", "big"), 0)
    log: list = []
    calls = [asyncio.create_task(queued(door, Flow("a", f"a{i}", True), log)) for i in range(3)]
    await asyncio.sleep(0)
    calls.append(asyncio.create_task(queued(door, Flow("b", "b0", True), log)))
    await asyncio.sleep(0)
    for _ in calls:
        door.leave()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*calls), 1)
    assert log.index("b0") < log.index("a2"), log  # b's one call is not queued behind all of a's
