"""batchgate.blobs.lines: streaming a file into numbered lines, with where each starts."""

from __future__ import annotations

import tracemalloc

import pytest

from batchgate.blobs.lines import located_line_chunks, located_lines


async def feed(chunks):
    for chunk in chunks:
        yield chunk


def numbered_lines(chunks, max_line_bytes: int):
    """(line number, line) pairs: located_lines without the offsets."""
    return _numbered(located_lines(chunks, max_line_bytes))


async def _numbered(located):
    async for line_no, _, line in located:
        yield line_no, line


async def collect(chunks, max_line_bytes: int = 1000) -> list[tuple[int, bytes | None]]:
    return [pair async for pair in numbered_lines(feed(chunks), max_line_bytes)]


def splits(data: bytes):
    """Every way of cutting `data` in two, plus one byte per chunk."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


async def test_simple_lines():
    assert await collect([b"a\nbb\nccc\n"]) == [(1, b"a"), (2, b"bb"), (3, b"ccc")]


async def test_empty_stream():
    assert await collect([]) == []
    assert await collect([b"", b"", b""]) == []


async def test_single_newline_is_one_blank_line():
    assert await collect([b"\n"]) == [(1, b"")]


async def test_lines_split_across_chunk_boundaries():
    data = b'{"custom_id": "a"}\n{"custom_id": "bb"}\n\n{"x": 3}\n'
    expected = [(1, b'{"custom_id": "a"}'), (2, b'{"custom_id": "bb"}'), (3, b""), (4, b'{"x": 3}')]
    for chunks in splits(data):
        assert await collect(chunks) == expected, chunks


async def test_line_spread_over_many_chunks():
    chunks = [b"ab", b"cd", b"ef", b"\ngh", b"ij\n"]
    assert await collect(chunks) == [(1, b"abcdef"), (2, b"ghij")]


async def test_crlf_lines():
    data = b"one\r\ntwo\r\n\r\nfour\r\n"
    for chunks in splits(data):
        assert await collect(chunks) == [(1, b"one"), (2, b"two"), (3, b""), (4, b"four")], chunks


async def test_only_a_trailing_cr_is_dropped():
    assert await collect([b"a\rb\n", b"c\r\r\n"]) == [(1, b"a\rb"), (2, b"c\r")]


async def test_missing_final_newline():
    for chunks in splits(b"first\nlast"):
        assert await collect(chunks) == [(1, b"first"), (2, b"last")], chunks


async def test_missing_final_newline_with_cr():
    assert await collect([b"first\r\nlast\r"]) == [(1, b"first"), (2, b"last")]


async def test_blank_lines_keep_numbering():
    assert await collect([b"a\n\n\n  \nb\n"]) == [(1, b"a"), (2, b""), (3, b""), (4, b"  "), (5, b"b")]


async def test_many_lines_numbered_in_order():
    data = b"".join(b"line-%d\n" % i for i in range(1, 1001))
    chunks = [data[i : i + 37] for i in range(0, len(data), 37)]
    result = await collect(chunks)
    assert result == [(i, b"line-%d" % i) for i in range(1, 1001)]


async def test_over_long_line_yields_none_and_numbering_continues():
    data = b"short\n" + b"x" * 50 + b"\nnext\n"
    for chunks in splits(data):
        assert await collect(chunks, max_line_bytes=10) == [(1, b"short"), (2, None), (3, b"next")], chunks


async def test_several_over_long_lines():
    data = b"y" * 30 + b"\nok\n" + b"z" * 40 + b"\n" + b"w" * 25
    for chunks in splits(data):
        assert await collect(chunks, max_line_bytes=10) == [(1, None), (2, b"ok"), (3, None), (4, None)], chunks


async def test_over_long_final_line_without_newline():
    assert await collect([b"ok\n", b"x" * 100], max_line_bytes=10) == [(1, b"ok"), (2, None)]
    assert await collect([b"ok\n"] + [b"x" * 7] * 20, max_line_bytes=10) == [(1, b"ok"), (2, None)]


async def test_line_exactly_at_the_limit():
    data = b"x" * 10 + b"\n" + b"y" * 10 + b"\r\n" + b"z" * 10
    for chunks in splits(data):
        assert await collect(chunks, max_line_bytes=10) == [(1, b"x" * 10), (2, b"y" * 10), (3, b"z" * 10)], chunks


async def test_line_two_bytes_over_the_limit_is_none():
    for chunks in splits(b"x" * 12 + b"\n"):
        assert await collect(chunks, max_line_bytes=10) == [(1, None)], chunks


async def test_line_one_byte_over_the_limit_is_none():
    assert await collect([b"x" * 11 + b"\n"], max_line_bytes=10) == [(1, None)]


async def test_line_one_byte_over_the_limit_is_never_accepted_as_within_it():
    # Whatever numbered_lines yields for a limit+1 line, it is not a line within the limit.
    [(number, raw)] = await collect([b"x" * 11 + b"\n"], max_line_bytes=10)
    assert number == 1
    assert raw is None or len(raw) > 10


async def test_crlf_line_over_the_limit_is_none():
    assert await collect([b"x" * 11 + b"\r\n"], max_line_bytes=10) == [(1, None)]


async def test_huge_line_is_never_buffered_whole():
    """A 8 MiB line fed in 4 KiB chunks against a 1 KiB limit: memory stays around one chunk."""
    chunk = b"x" * 4096
    count = 2048

    async def chunks():
        yield b'{"first": 1}\n'
        for _ in range(count):
            yield chunk
        yield b"\n"
        yield b'{"after": 1}\n'

    tracemalloc.start()
    try:
        result = [pair async for pair in numbered_lines(chunks(), 1024)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == [(1, b'{"first": 1}'), (2, None), (3, b'{"after": 1}')]
    assert peak < 512 * 1024, f"peak {peak} bytes while streaming a {len(chunk) * count} byte line"


async def test_huge_line_is_skipped_lazily():
    """The over-long line is reported as soon as its newline arrives, before the rest of the stream is read."""
    consumed = []

    async def chunks():
        for i, part in enumerate([b"a" * 100, b"a" * 100, b"\nnext", b"\n", b"tail\n"]):
            consumed.append(i)
            yield part

    gen = numbered_lines(chunks(), 10)
    assert await gen.__anext__() == (1, None)
    assert consumed == [0, 1, 2]
    assert [pair async for pair in gen] == [(2, b"next"), (3, b"tail")]


# --- located_lines: where each line starts, so a shard can be read from its own offset ----------


async def locate(chunks, max_line_bytes: int = 1000, first_line: int = 1, first_offset: int = 0):
    return [t async for t in located_lines(feed(chunks), max_line_bytes, first_line, first_offset)]


@pytest.mark.parametrize("data", [b"a\nbb\n\nccc\r\nd", b"\n\nx\r\n\r\nyy\n", b"one line, no newline", b""])
async def test_every_offset_points_at_its_line_however_the_stream_is_cut(data):
    for chunks in splits(data):
        located = await locate(chunks)
        assert [(n, line) for n, _, line in located] == await collect(chunks)
        for _, offset, line in located:
            assert data[offset : offset + len(line)] == line
            assert offset == 0 or data[offset - 1 : offset] == b"\n", "a line starts after a newline"


async def test_reading_from_an_offset_numbers_lines_as_the_whole_file_does():
    data = b"l1\nl2\n\nl4 is longer\nl5\n"
    whole = await locate([data])
    assert [(n, line) for n, _, line in whole] == [(1, b"l1"), (2, b"l2"), (3, b""), (4, b"l4 is longer"), (5, b"l5")]
    for number, offset, _line in whole:
        tail = await locate([data[offset:]], first_line=number, first_offset=offset)
        assert tail == [t for t in whole if t[0] >= number]


async def test_an_over_long_line_keeps_its_offset():
    data = b"ok\n" + b"x" * 50 + b"\nafter\n"
    assert await locate([data[i : i + 7] for i in range(0, len(data), 7)], max_line_bytes=10) == [
        (1, 0, b"ok"),
        (2, 3, None),
        (3, 54, b"after"),
    ]


def reference(data: bytes, limit: int) -> list[tuple[int, int, bytes | None]]:
    """The located lines of a whole file, worked out the slow, obvious way."""
    located, at = [], 0
    for number, raw in enumerate(data.split(b"\n"), 1):
        if number > data.count(b"\n") and not raw:
            break
        line = raw.removesuffix(b"\r")
        located.append((number, at, None if len(line) > limit else line))
        at += len(raw) + 1
    return located


@pytest.mark.parametrize(
    "data",
    [b"ab\r\ncd\n\nxxxxxxxxxx\r\nef\rgh\nlast", b"xxxxxxxxxxxx\nyy\r\n", b"\r\n\r\nxxxxxxxx\r\n", b"a\nxxxxxxxxx\r"],
)
async def test_line_chunks_match_the_whole_file_split(data):
    for chunks in splits(data):
        lists = [located async for located in located_line_chunks(feed(chunks), 8)]
        assert [item for located in lists for item in located] == reference(data, 8), chunks
        assert all(lists) and len(lists) <= len(chunks) + 1  # one list per chunk, never an empty one


async def test_line_chunks_start_where_told():
    lists = [located async for located in located_line_chunks(feed([b"a\nbb\n", b"c"]), 10, 7, 500)]
    assert lists == [[(7, 500, b"a"), (8, 502, b"bb")], [(9, 505, b"c")]]
    assert lists[1][0].line == 9 and lists[1][0].offset == 505 and lists[1][0].raw == b"c"
