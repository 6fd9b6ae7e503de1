"""The dispatch order by prefix group: the copy's line format, when the file order is kept, and the order itself."""

from __future__ import annotations

import random

from batchgate.domain.dispatch_order import HEADER_ROOM, CopyLine, RunCount, decode, encode, grouped_order, lone_key
from batchgate.worker.dispatch_plan import GroupLedger


def test_a_copy_line_gives_back_its_line_group_and_bytes_untouched():
    raw = b'{"custom_id": "a b", "body": {"x": "  spaced  "}}'
    assert decode(encode(12, 3, raw)) == CopyLine(12, 3, raw)
    assert len(encode(2**62, 2**62, b"")) <= HEADER_ROOM


def test_groups_in_runs_keep_the_file_order_and_shuffled_ones_do_not():
    def in_runs(keys: list[bytes]) -> bool:
        runs = RunCount()
        heads = runs.heads(keys[:2]) + runs.heads(keys[2:])  # a run may go on across calls
        return len(heads) == len(set(keys))

    assert in_runs([b"a"] * 5)
    assert in_runs([lone_key(n) for n in range(1, 6)])
    assert in_runs([b"a", b"a", b"b", b"c", b"c"])
    assert not in_runs([b"a", b"b", b"a"])


def test_the_scratch_table_keeps_the_file_order_of_groups_in_runs(tmp_path):
    ledger = GroupLedger(tmp_path)
    try:
        ledger.add_runs(RunCount().heads([b"a", b"a", b"b", b"c", b"c"]))
        assert ledger.in_runs()
        ledger.add_runs([b"a"])
        assert not ledger.in_runs()
    finally:
        ledger.close()


def test_lines_without_a_prompt_are_groups_of_their_own():
    assert lone_key(1) != lone_key(2) and len(lone_key(1)) != 8  # never a prefix key (8 bytes)


def test_groups_come_by_their_first_line_and_lines_in_file_order_within_a_group():
    keys = [b"b", b"a", b"b", b"c", b"a", b"b"]
    assert [(c.line, c.group) for c in grouped_order(keys)] == [(1, 1), (3, 1), (6, 1), (2, 2), (5, 2), (4, 4)]


def test_the_scratch_table_orders_lines_as_the_reference_does(tmp_path):
    rng = random.Random(14)
    keys = [bytes([rng.randrange(40)]) * 8 for _ in range(5_000)]
    ledger = GroupLedger(tmp_path)
    try:
        ledger.add_runs(RunCount().heads(keys))
        assert not ledger.in_runs()
        ledger.add([(line, key, b"raw %d" % line) for line, key in enumerate(keys, 1)])
        ordered = [copied for rows in ledger.ordered() for copied in rows]
    finally:
        ledger.close()
    assert [(c.line, c.group) for c in ordered] == [(c.line, c.group) for c in grouped_order(keys)]
    assert all(c.raw == b"raw %d" % c.line for c in ordered)
    assert list(tmp_path.iterdir()) == []  # the scratch file lost its name once open
