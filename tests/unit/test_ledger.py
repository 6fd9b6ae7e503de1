"""batchgate.ledger.CustomIdLedger: duplicate custom_ids from a scratch SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchgate.ledger import CustomIdLedger


@pytest.fixture
def ledger(tmp_path):
    made = CustomIdLedger(tmp_path / "scratch")
    yield made
    made.close()


async def test_no_duplicates(ledger):
    await ledger.add([("a", 1), ("b", 2), ("c", 3), ("A", 4)])
    assert await ledger.duplicates(100) == []


async def test_empty_ledger(ledger):
    await ledger.add([])
    assert await ledger.duplicates(10) == []


async def test_duplicates_with_first_and_repeating_line(ledger):
    await ledger.add([("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("a", 6)])
    assert await ledger.duplicates(100) == [("a", 1, 3), ("b", 2, 5), ("a", 1, 6)]


async def test_duplicates_across_several_adds(ledger):
    await ledger.add([("x", 1), ("y", 2)])
    await ledger.add([("z", 10)])
    await ledger.add([("y", 11), ("x", 12)])
    assert await ledger.duplicates(100) == [("y", 2, 11), ("x", 1, 12)]


async def test_earliest_repeats_first_even_if_added_out_of_order(ledger):
    await ledger.add([("q", 50), ("q", 40)])
    await ledger.add([("p", 7), ("q", 3), ("p", 9)])
    assert await ledger.duplicates(100) == [("p", 7, 9), ("q", 3, 40), ("q", 3, 50)]


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
async def test_limit(ledger, limit):
    await ledger.add([("same", line) for line in range(1, 11)])
    expected = [("same", 1, line) for line in range(2, 11)][:limit]
    assert await ledger.duplicates(limit) == expected


async def test_many_ids(ledger):
    pairs = [(f"id-{i}", i + 1) for i in range(20_000)]
    pairs += [("id-123", 20_001), ("id-19999", 20_002)]
    await ledger.add(pairs)
    assert await ledger.duplicates(100) == [("id-123", 124, 20_001), ("id-19999", 20_000, 20_002)]


async def test_unicode_and_odd_ids(ledger):
    await ledger.add(
        [("naïve ✓", 1), ("naive ✓", 2), ("naïve ✓", 3), ("'; DROP TABLE ids; --", 4), ("'; DROP TABLE ids; --", 5)]
    )
    assert await ledger.duplicates(10) == [("naïve ✓", 1, 3), ("'; DROP TABLE ids; --", 4, 5)]


def open_scratch_files(folder) -> list[str]:
    """The files of `folder` this process holds open, by the name they were opened under."""
    links = (os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())
    return [link for link in links if link.startswith(str(folder))]


def test_the_file_is_in_the_folder_but_its_name_is_gone_while_open(tmp_path):
    """Held open under the scratch folder, with no name left in it: nothing to leave behind, even if killed."""
    folder = tmp_path / "nested" / "tmp"
    ledger = CustomIdLedger(folder)
    [held] = open_scratch_files(folder)
    assert Path(held).name.startswith("ids-") and held.endswith(".db (deleted)")
    assert list(folder.iterdir()) == []
    ledger.close()
    assert open_scratch_files(folder) == []


def test_a_killed_process_leaves_no_scratch_file(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from batchgate.scratch_ids import UniqueIds; "
        "ids = UniqueIds(Path(sys.argv[1])); ids.add([f'id{i}' for i in range(10000)]); print('ready', flush=True); "
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert list(tmp_path.iterdir()) == []


async def test_file_removed_on_close_after_use(tmp_path):
    ledger = CustomIdLedger(tmp_path)
    await ledger.add([("a", 1), ("a", 2)])
    assert await ledger.duplicates(5) == [("a", 1, 2)]
    ledger.close()
    assert list(tmp_path.iterdir()) == []


async def test_two_ledgers_in_one_folder_do_not_collide(tmp_path):
    first, second = CustomIdLedger(tmp_path), CustomIdLedger(tmp_path)
    try:
        await first.add([("a", 1), ("a", 2)])
        await second.add([("a", 1), ("b", 2)])
        assert await first.duplicates(5) == [("a", 1, 2)] and await second.duplicates(5) == []
        assert len(open_scratch_files(tmp_path)) == 2
    finally:
        first.close()
        second.close()
    assert list(tmp_path.iterdir()) == []


async def test_inserts_overlap_with_the_caller_yet_every_chunk_lands(ledger):
    for start in range(0, 5000, 1000):  # each add returns before its insert is done; the next waits for it
        await ledger.add([(f"id{i % 4500}", i + 1) for i in range(start, start + 1000)])
    repeats = await ledger.duplicates(1000)
    assert len(repeats) == 500 and repeats[0] == ("id0", 1, 4501) and repeats[-1] == ("id499", 500, 5000)


async def test_ids_of_any_text_keep_their_exact_value(ledger):
    odd = ["12", "1.0", "null", 'q"uote', "back\\slash", "nul\x00byte", "é🙂", " a", "a "]
    await ledger.add([(custom_id, n) for n, custom_id in enumerate(odd, 1)])
    await ledger.add([(custom_id, n) for n, custom_id in enumerate(odd, 101)] + [("12.0", 200), ("A ", 201)])
    assert await ledger.duplicates(100) == [(custom_id, n, n + 100) for n, custom_id in enumerate(odd, 1)]
