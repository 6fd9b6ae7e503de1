"""batchgate.blobs.base.chunk_sizes: a read that may stop early starts small and grows to CHUNK."""

from __future__ import annotations

from itertools import islice

from batchgate.blobs.base import CHUNK, chunk_sizes


def test_sizes_double_from_the_first_up_to_a_chunk_and_stay_there():
    assert list(islice(chunk_sizes(CHUNK // 8), 6)) == [CHUNK // 8, CHUNK // 4, CHUNK // 2, CHUNK, CHUNK, CHUNK]


def test_by_default_every_read_is_a_chunk():
    assert list(islice(chunk_sizes(), 3)) == [CHUNK] * 3


def test_the_first_size_is_at_least_one_byte_and_at_most_a_chunk():
    assert next(chunk_sizes(0)) == 1
    assert next(chunk_sizes(10 * CHUNK)) == CHUNK
