"""batchgate.domain.shards: cutting a batch's request lines into shards."""

from batchgate.domain.shards import ShardCutter, ShardSpan


def cut(lines: list[tuple[int, int]], size: int) -> list[ShardSpan]:
    cutter = ShardCutter(size)
    for line, offset in lines:
        cutter.add(line, offset)
    return cutter.spans()


def test_every_n_requests_start_a_shard_and_gaps_belong_to_the_shard_before():
    # Requests on lines 1, 2, 4, 5, 8 (3, 6 and 7 blank), 10 bytes a line.
    requests = [(1, 0), (2, 10), (4, 30), (5, 40), (8, 70)]
    assert cut(requests, 2) == [ShardSpan(1, 3, 0), ShardSpan(4, 7, 30), ShardSpan(8, 8, 70)]
    assert cut(requests, 5) == [ShardSpan(1, 8, 0)]
    assert cut(requests, 1) == [ShardSpan(n, e, o) for (n, o), e in zip(requests, [1, 3, 4, 7, 8])]


def test_no_requests_no_shards():
    assert cut([], 10) == []


def test_shards_cover_every_request_line_exactly_once():
    requests = [(n, n * 7) for n in range(1, 1001) if n % 3]
    spans = cut(requests, 64)
    covered = [n for n, _ in requests if any(s.first_line <= n <= s.last_line for s in spans)]
    assert covered == [n for n, _ in requests]
    assert all(a.last_line + 1 == b.first_line for a, b in zip(spans, spans[1:]))
    assert sum(1 for n, _ in requests if spans[0].first_line <= n <= spans[0].last_line) == 64
