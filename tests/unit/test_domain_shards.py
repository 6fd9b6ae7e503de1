"""batchgate.domain.shards: cutting a batch's request lines into shards."""

import itertools

from batchgate.domain.shards import GRAINS, ShardCutter, ShardSpan


def cut(lines: list[tuple[int, int]], size: int, parallel: int = 1) -> list[ShardSpan]:
    cutter = ShardCutter(size, parallel)
    for line, offset in lines:
        cutter.add(line, offset)
    return cutter.spans()


def requests_in(span: ShardSpan, requests: list[tuple[int, int]]) -> int:
    return sum(1 for n, _ in requests if span.first_line <= n <= span.last_line)


def test_shards_start_at_a_request_with_its_offset_and_gaps_belong_to_the_shard_before():
    # Requests on lines 1, 2, 4, 5, 8 (3, 6 and 7 blank), 10 bytes a line.
    requests = [(1, 0), (2, 10), (4, 30), (5, 40), (8, 70)]
    assert cut(requests, 2) == [ShardSpan(1, 1, 0), ShardSpan(2, 4, 10), ShardSpan(5, 8, 40)]
    assert cut(requests, 5) == [ShardSpan(1, 8, 0)]
    assert cut(requests, 1) == [ShardSpan(n, e, o) for (n, o), e in zip(requests, [1, 3, 4, 7, 8], strict=True)]


def test_no_requests_no_shards():
    assert cut([], 10) == []


def test_shards_cover_every_request_line_exactly_once():
    requests = [(n, n * 7) for n in range(1, 1001) if n % 3]
    spans = cut(requests, 64)
    covered = [n for n, _ in requests if any(s.first_line <= n <= s.last_line for s in spans)]
    assert covered == [n for n, _ in requests]
    assert all(a.last_line + 1 == b.first_line for a, b in itertools.pairwise(spans))
    assert spans[0].first_line == 1 and spans[-1].last_line == requests[-1][0]


def test_shards_are_even_and_no_larger_than_asked_give_or_take_a_grain():
    requests = [(n, n * 7) for n in range(1, 1001) if n % 3]
    sizes = [requests_in(s, requests) for s in cut(requests, 64)]
    assert len(sizes) == -(-len(requests) // 64)
    assert max(sizes) - min(sizes) <= 64 // GRAINS and max(sizes) <= 64 + 64 // GRAINS


def test_the_shard_count_is_a_multiple_of_the_shards_that_run_at_once():
    # 10,000 requests, 500 a shard, 8 at once: 20 shards would leave a last round of 4; 24 even ones do not.
    requests = [(n, n * 100) for n in range(1, 10_001)]
    sizes = [requests_in(s, requests) for s in cut(requests, 500, parallel=8)]
    assert len(sizes) == 24 and sum(sizes) == 10_000 and max(sizes) - min(sizes) <= 500 // GRAINS


def test_a_small_batch_is_spread_over_the_shards_that_may_run_at_once():
    requests = [(n, n) for n in range(1, 1001)]
    assert len(cut(requests, 500, parallel=8)) == 8
    assert len(cut(requests[:100], 500, parallel=8)) == 2  # one shard per grain of 62 at most


def test_grains_noted_once_give_the_spans_of_any_parallelism():
    """An upload notes the grains; a batch restores them and cuts shards for its own parallelism."""
    requests = [(n, n * 13) for n in range(1, 2001) if n % 5]
    noted = ShardCutter(64)
    for line, offset in requests:
        noted.add(line, offset)
    for parallel in (1, 3, 8):
        restored = ShardCutter(64, parallel)
        restored.restore(noted.grains(), len(requests), requests[-1][0])
        assert restored.spans() == cut(requests, 64, parallel)


def test_a_run_of_lines_notes_the_grains_one_by_one_would():
    """add_run picks the grains by slicing; the cutter must end as add() for each line leaves it."""
    for lines_per_shard, runs in itertools.product([1, 3, 8, 16, 20], [[5], [1, 1, 7], [16, 3, 9, 40], [0, 2]]):
        one_by_one, by_runs, line = ShardCutter(lines_per_shard), ShardCutter(lines_per_shard), 0
        for size in runs:
            run = [(line + i * 2 + 1, (line + i) * 10, None) for i in range(size)]
            for number, offset, _ in run:
                one_by_one.add(number, offset)
            by_runs.add_run(run)
            line += size * 2
        assert by_runs.grains() == one_by_one.grains() and by_runs.spans() == one_by_one.spans()
