"""The splitter's Block form, and what FileCheck and ShardCutter make of it, against the Located form.

feed_block() is the upload check's fast lane (api/upload_checker.py): each test holds it to give exactly
what feed() gives, however the bytes are cut, so the check's verdict cannot depend on which form it took.
"""

from __future__ import annotations

from itertools import pairwise

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchgate.domain.file_check import FileCheck, LineLimits
from batchgate.domain.shards import ShardCutter
from batchgate.domain.splitting import Block, LineSplitter, Located

LIMIT = 24
CHAT = "/v1/chat/completions"

pieces = st.sampled_from([b"a", b"bb", b"{}", b" ", b"\r", b"\n", b"\r\n", b"\n\n", b"x" * 20, b"y" * 30])
files = st.lists(pieces, max_size=40).map(b"".join)
cut_points = st.lists(st.integers(min_value=0, max_value=1_000), max_size=8)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in pairwise(edges)] or [data]


def located_by_feed(chunks: list[bytes], limit: int) -> list[Located]:
    splitter = LineSplitter(limit)
    return [item for chunk in chunks for item in splitter.feed(chunk)] + splitter.end()


def located_by_block(chunks: list[bytes], limit: int) -> tuple[list[Located], list[Block]]:
    splitter, located, blocks = LineSplitter(limit), [], []
    for chunk in chunks:
        given_back = splitter.feed_block(chunk)
        if type(given_back) is Block:
            blocks.append(given_back)
            located += given_back.located()
        else:
            located += given_back
    return located + splitter.end(), blocks


@settings(max_examples=300)
@given(data=files, points=cut_points, limit=st.sampled_from([1, 5, LIMIT, 1_000]))
@example(data=b"x" * 30 + b"\nab\n", points=[3, 31], limit=LIMIT)  # a line over the limit across two chunks
@example(data=b"ab\r\ncd\n", points=[3], limit=LIMIT)  # a cut between "\r" and "\n"
def test_blocks_locate_every_line_as_feed_does(data, points, limit):
    chunks = cut(data, points)
    located, blocks = located_by_block(chunks, limit)
    assert located == located_by_feed(chunks, limit)
    for block in blocks:
        assert all(raw.endswith(b"\n") and len(raw[:-1].removesuffix(b"\r")) <= limit for raw in block.raws)
        assert data[block.first_offset :].startswith(b"".join(block.raws))


def test_a_chunk_of_whole_lines_within_the_limit_is_one_block():
    splitter = LineSplitter(LIMIT)
    assert splitter.feed_block(b"a") == []  # a waits for its newline: no block, as feed gives no line
    assert splitter.feed_block(b"b\nc\r\n\nd\ne") == Block(1, 0, [b"ab\n", b"c\r\n", b"\n", b"d\n"])
    assert splitter.end() == [(5, 9, b"e")]


def test_a_chunk_with_a_line_over_the_limit_is_given_as_feed_gives_it():
    splitter = LineSplitter(4)
    assert splitter.feed_block(b"ok\n" + b"x" * 9 + b"\nok\n") == [(1, 0, b"ok"), (2, 3, None), (3, 13, b"ok")]
    assert splitter.feed_block(b"fine\n") == Block(4, 16, [b"fine\n"])


@given(
    runs=st.lists(st.lists(st.integers(min_value=1, max_value=9), max_size=30), max_size=6),
    lines_per_shard=st.integers(min_value=1, max_value=40),
)
def test_lines_added_at_once_are_the_grains_of_lines_added_one_by_one(runs, lines_per_shard):
    one_by_one, at_once = ShardCutter(lines_per_shard), ShardCutter(lines_per_shard)
    line, offset = 1, 0
    for sizes in runs:
        raws = [b"x" * (size - 1) + b"\n" for size in sizes]
        at_once.add_lines(line, offset, raws)
        for raw in raws:
            one_by_one.add(line, offset)
            line, offset = line + 1, offset + len(raw)
        line, offset = line + 1, offset + 1  # a blank line between runs: not a request
    assert at_once.grains() == one_by_one.grains()
    assert at_once.spans() == one_by_one.spans()


def request(custom_id: str, url: str = CHAT, model: str = "m") -> bytes:
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": model}})


check_lines = st.sampled_from(
    [
        request("a"),
        request("b", model="n"),
        request("c"),
        request("d", url="/v1/embeddings"),
        b"",
        b"   ",
        b"[1]",
        b"{not json",
        *(  # at the depth limit of 5 below (the line, its body, three arrays), and one level past it
            orjson.dumps({"custom_id": "e", "method": "POST", "url": CHAT, "body": {"model": "m", "x": nested}})
            for nested in ([[[1]]], [[[[1]]]])
        ),
        request("long" + "x" * 200),
    ]
)


@settings(max_examples=200)
@given(
    lines=st.lists(check_lines, max_size=25),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=1, max_size=3),
    points=cut_points,
    max_lines=st.sampled_from([3, 1_000]),
    report_every_error=st.booleans(),
)
def test_a_file_checked_by_blocks_is_checked_as_by_located_lines(lines, endings, points, max_lines, report_every_error):
    data = b"".join(line + endings[n % len(endings)] for n, line in enumerate(lines))
    limits = LineLimits(max_lines=max_lines, max_line_bytes=120, shard_lines=4, max_json_depth=5)

    def run(by_block: bool) -> tuple:
        errors: list = []
        check = FileCheck(limits, on_error=errors.append if report_every_error else None)
        splitter, ids, numbers = LineSplitter(limits.max_line_bytes), [], []
        for chunk in cut(data, points):
            requests = check.feed_block(splitter.feed_block(chunk)) if by_block else check.feed(splitter.feed(chunk))
            ids += requests.custom_ids
            numbers += requests.lines
        requests = check.feed(splitter.end())
        check.end()
        return ids + requests.custom_ids, numbers + requests.lines, errors, check.error, check.summary(), check.models

    assert run(by_block=True) == run(by_block=False)
