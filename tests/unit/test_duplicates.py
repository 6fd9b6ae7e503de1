"""Repeats sent once: which bodies qualify, and the single flight that shares one answer among them."""

import asyncio

import pytest

from batchgate.domain.duplicates import duplicate_key, wants_deduplication
from batchgate.domain.results import Outcome
from batchgate.worker.duplicates import Flights
from batchgate.worker.per_batch import PerBatch

BODY = {"model": "m", "messages": [{"role": "user", "content": "2+2?"}]}


def test_only_a_batch_that_asks_deduplicates():
    assert wants_deduplication({"batchgate_deduplicate": "true"})
    assert wants_deduplication({"batchgate_deduplicate": " True "})
    assert not wants_deduplication({"batchgate_deduplicate": "yes"})
    assert not wants_deduplication({"other": "true"})
    assert not wants_deduplication(None)


def test_only_a_repeatable_body_has_a_key():
    assert duplicate_key(BODY) is None, "sampled answers differ: each repeat is sent"
    assert duplicate_key({**BODY, "temperature": 0.7}) is None
    assert duplicate_key({**BODY, "temperature": True}) is None
    assert duplicate_key({**BODY, "temperature": 0}) == duplicate_key({**BODY, "temperature": 0})
    assert duplicate_key({**BODY, "temperature": 0.0}) is not None
    assert duplicate_key({**BODY, "seed": 7}) is not None
    assert duplicate_key({**BODY, "seed": 7}) != duplicate_key({**BODY, "seed": 8})


class Upstream:
    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    async def send(self, answer: Outcome | None = None) -> Outcome | None:
        self.sent += 1
        await self.release.wait()
        return answer if answer is not None else Outcome(status_code=200, body={"n": self.sent})


async def test_repeats_in_flight_together_share_one_send():
    flights, upstream = Flights(), Upstream()
    tasks = [asyncio.create_task(flights.outcome(b"k", upstream.send)) for _ in range(5)]
    await asyncio.sleep(0)
    upstream.release.set()
    results = await asyncio.gather(*tasks)
    assert upstream.sent == 1
    assert [copied for _, copied in results] == [False, True, True, True, True]
    assert all(outcome is results[0][0] for outcome, _ in results)


async def test_a_later_repeat_gets_the_kept_answer_and_other_bodies_are_sent():
    flights, upstream = Flights(), Upstream()
    upstream.release.set()
    first, _ = await flights.outcome(b"a", upstream.send)
    again, copied = await flights.outcome(b"a", upstream.send)
    other, other_copied = await flights.outcome(b"b", upstream.send)
    assert (again, copied) == (first, True)
    assert (upstream.sent, other_copied) == (2, False) and other != first


async def test_an_abandoned_send_hands_the_line_to_a_repeat_that_sends_it_itself():
    flights, calls = Flights(), []

    async def abandoned() -> Outcome | None:
        calls.append("first")
        await asyncio.sleep(0)
        return None  # its shard stopped: no answer

    async def sent() -> Outcome | None:
        calls.append("second")
        return Outcome(status_code=200, body={})

    first = asyncio.create_task(flights.outcome(b"k", abandoned))
    await asyncio.sleep(0)
    second = await flights.outcome(b"k", sent)
    assert await first == (None, False)
    assert second == (Outcome(status_code=200, body={}), False)
    assert calls == ["first", "second"]


async def test_a_cancelled_sender_does_not_strand_its_repeats():
    flights, upstream = Flights(), Upstream()
    leader = asyncio.create_task(flights.outcome(b"k", upstream.send))
    await asyncio.sleep(0)
    repeat = asyncio.create_task(flights.outcome(b"k", upstream.send))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    upstream.release.set()
    outcome, copied = await repeat
    assert outcome is not None and not copied and upstream.sent == 2


async def test_kept_answers_are_bounded():
    flights, upstream = Flights(keep=2), Upstream()
    upstream.release.set()
    for key in (b"a", b"b", b"c"):
        await flights.outcome(key, upstream.send)
    await flights.outcome(b"a", upstream.send)
    assert upstream.sent == 4, "the oldest answer was let go, so its repeat is sent again"


def test_a_batch_shares_its_flights_between_shards_until_the_last_ends():
    duplicates = PerBatch(Flights)
    with duplicates.of("b1") as one, duplicates.of("b1") as two, duplicates.of("b2") as other:
        assert one is two and one is not other
    with duplicates.of("b1") as fresh:
        assert fresh is not one
