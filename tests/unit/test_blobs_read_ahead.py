"""batchgate.blobs.base.read_ahead: the next item is on its way while the caller works on this one."""

from __future__ import annotations

import asyncio

import pytest

from batchgate.blobs.base import read_ahead


class Source:
    """An async iterator of 0..count-1 that notes when each item is asked for and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None):
        self.asked: list[int] = []
        self.closed = False
        self._count, self._fail_at = count, fail_at

    async def items(self):
        try:
            for i in range(self._count):
                self.asked.append(i)
                await asyncio.sleep(0.001)  # a read of the disk
                if i == self._fail_at:
                    raise OSError("the disk failed")
                yield i
        finally:
            self.closed = True


async def test_the_next_item_is_asked_for_before_the_caller_wants_it():
    source = Source(3)
    seen = []
    async for item in read_ahead(source.items()):
        seen.append(item)
        await asyncio.sleep(0.01)  # the caller works on the item
        assert item + 1 in source.asked or item == 2, "the next read started meanwhile"
    assert seen == [0, 1, 2] and source.closed


async def test_a_caller_that_stops_early_closes_the_source():
    source = Source(10)
    reader = read_ahead(source.items())
    assert await anext(reader) == 0
    await reader.aclose()
    assert source.closed and len(source.asked) <= 2


async def test_a_failing_read_reaches_the_caller_at_its_item():
    source = Source(5, fail_at=2)
    seen = []
    with pytest.raises(OSError, match="disk failed"):
        async for item in read_ahead(source.items()):
            seen.append(item)
    assert seen == [0, 1]
