"""Checking a batch input file while it is uploaded: domain/file_check.py, and the process it runs in
(api/upload_checker.py), fed by api/upload_check.py.

The reference for every summary is the validating stage's own pass (LineSplitter, parse_line, ShardCutter).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from pathlib import Path

import orjson
import pytest

from batchgate.api.upload_check import QUEUED_CHUNKS, SPARE, UploadCheck
from batchgate.api.upload_checker import IDS_AT_ONCE, arguments, check_chunks
from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits, check_file
from batchgate.domain.lines import LineError, is_blank, parse_line
from batchgate.domain.shards import ShardCutter
from batchgate.domain.splitting import LineSplitter
from batchgate.settings import Settings

CHAT = "/v1/chat/completions"
LIMITS = LineLimits(max_lines=100, max_line_bytes=300, shard_lines=4)


def line(custom_id: str, *, url: str = CHAT, model: str = "m", **changes) -> bytes:
    obj = {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        **changes,
    }
    return orjson.dumps(obj)


def jsonl(lines: list[bytes], newline: bytes = b"\n") -> bytes:
    return b"".join(raw + newline for raw in lines)


def check(chunks: list[bytes], limits: LineLimits = LIMITS) -> FileSummary | None:
    """FileCheck over the chunks, as the upload's thread feeds it (repeats are the thread's: none here)."""
    file_check, splitter, ids = FileCheck(limits), LineSplitter(limits.max_line_bytes), []
    for chunk in chunks:
        ids += file_check.feed(splitter.feed(chunk)).custom_ids
    ids += file_check.feed(splitter.end()).custom_ids
    assert len(ids) == len(set(ids)), "these tests use distinct custom_ids"
    return file_check.summary()


def full_pass(data: bytes, endpoint: str = CHAT, limits: LineLimits = LIMITS, parallel: int = 1):
    """What the validating stage finds over the whole file: (requests, models, spans)."""
    splitter, cutter = LineSplitter(limits.max_line_bytes), ShardCutter(limits.shard_lines, parallel)
    models, requests = set(), 0
    for located in splitter.feed(data) + splitter.end():
        if located.raw is not None and is_blank(located.raw):
            continue
        request = parse_line(located.raw, located.line, endpoint, limits.max_line_bytes)
        requests += 1
        models.add(request.model)
        cutter.add(located.line, located.offset)
    return requests, models, cutter.spans()


def spans_of(summary: FileSummary, parallel: int = 1):
    cutter = ShardCutter(summary.limits.shard_lines, parallel)
    cutter.restore(summary.grains, summary.requests, summary.last_line)
    return cutter.spans()


MIXED = [line(f"r{i}") if i % 4 else b"" for i in range(1, 31)] + [b"   ", line("last")]


def test_a_clean_file_is_summarised_as_the_full_pass_sees_it():
    data = jsonl(MIXED)
    summary = check([data])
    requests, _, _ = full_pass(data)
    assert summary is not None and summary.endpoint == CHAT and summary.model == "m"
    assert summary.requests == requests == 24 and summary.last_line == len(MIXED)
    assert summary.limits == LIMITS
    for parallel in (1, 2, 5):
        assert spans_of(summary, parallel) == full_pass(data, parallel=parallel)[2]


def test_lines_cut_anywhere_across_chunks_give_the_same_summary():
    data = jsonl([*MIXED[:9], b"", line("tail")])
    whole = check([data])
    assert whole is not None
    for cut in range(len(data) + 1):
        assert check([data[:cut], data[cut:]]) == whole, f"cut at byte {cut}"
    assert check([data[i : i + 1] for i in range(len(data))]) == whole
    assert check([data.removesuffix(b"\n")]) == whole, "a last line without its newline"


def test_crlf_lines_are_checked_like_lf_lines_with_their_own_offsets():
    data = jsonl(MIXED, b"\r\n")
    summary = check([data[:100], data[100:]])
    assert summary is not None and summary.requests == 24
    assert spans_of(summary, 3) == full_pass(data, parallel=3)[2]
    assert spans_of(summary, 3) != spans_of(check([jsonl(MIXED)]), 3), "the offsets count the \\r bytes"


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \n\t\r\n"])
def test_a_file_without_requests_has_no_summary(data):
    assert check([data]) is None  # the batch reports empty_file itself


BAD_LINES = {
    "invalid_json": b'{"custom_id": "x", ',
    "not_an_object": b"[1, 2]",
    "invalid_utf8": b'{"custom_id": "\xff"}',
    "missing_custom_id": line("x").replace(b'"custom_id":"x",', b""),
    "empty_custom_id": line(""),
    "get": line("x", method="GET"),
    "no_body": orjson.dumps({"custom_id": "x", "method": "POST", "url": CHAT}),
    "no_model": orjson.dumps({"custom_id": "x", "method": "POST", "url": CHAT, "body": {}}),
    "stream": line("x", body={"model": "m", "stream": True}),
    "unsupported_url": line("x", url="/v1/completions"),
    "too_long": line("x" * 300),
}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_one_bad_line_anywhere_means_no_summary(bad):
    good = [line(f"r{i}") for i in range(6)]
    for at in (0, 3, 6):
        assert check([jsonl([*good[:at], bad, *good[at:]])]) is None


def test_lines_for_two_endpoints_mean_no_summary():
    lines = [line("a"), line("b", url="/v1/embeddings"), line("c")]
    assert check([jsonl(lines)]) is None


def test_a_file_for_another_endpoint_is_summarised_for_it():
    summary = check([jsonl([line(f"e{i}", url="/v1/embeddings") for i in range(3)])])
    assert summary is not None and summary.endpoint == "/v1/embeddings" and summary.requests == 3


def test_a_mix_of_models_is_summarised_without_a_model():
    assert check([jsonl([line("a", model="x"), line("b", model="y"), line("c", model="x")])]).model is None
    assert check([jsonl([line("a", model="x"), line("b", model="x")])]).model == "x"


def test_more_requests_than_max_lines_mean_no_summary():
    limits = LineLimits(max_lines=3, max_line_bytes=300, shard_lines=4)
    assert check([jsonl([line(f"r{i}") for i in range(3)] + [b""])], limits).requests == 3
    assert check([jsonl([line(f"r{i}") for i in range(4)])], limits) is None


def test_a_summary_fits_only_its_endpoint_and_the_limits_it_was_made_under():
    summary = check([jsonl([line("a")])])
    assert summary.fits(CHAT, LineLimits(100, 300, 4))
    assert not summary.fits("/v1/embeddings", LIMITS)
    for changed in (LineLimits(99, 300, 4), LineLimits(100, 299, 4), LineLimits(100, 300, 5)):
        assert not summary.fits(CHAT, changed)


# --- the child process ---------------------------------------------------------------------------------


def settings_in(tmp_path, **changes) -> Settings:
    limits = {"max_lines": LIMITS.max_lines, "max_line_bytes": LIMITS.max_line_bytes, "shard_lines": LIMITS.shard_lines}
    return Settings(data_dir=tmp_path, **{**limits, **changes})


async def upload_check(settings: Settings, chunks: list[bytes]) -> FileSummary | None:
    checker = UploadCheck(settings)
    for chunk in chunks:
        await checker.feed(chunk)
    return await checker.summary()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_the_thread_summarises_a_clean_file_and_removes_its_scratch_file(tmp_path):
    data = jsonl(MIXED)
    assert await upload_check(settings_in(tmp_path), chunked(data, 7)) == check([data])
    assert list((tmp_path / "tmp").glob("ids-*")) == []


@pytest.mark.parametrize("first, second", [(1, 2), (5, 30), (0, IDS_AT_ONCE + 5)])
async def test_a_repeated_custom_id_means_no_summary(tmp_path, first, second):
    """Near or far apart: in one insert into the on-disk set, or in two."""
    ids = [f"id-{i}" for i in range(max(second + 1, 40))]
    settings = settings_in(tmp_path, max_lines=len(ids))
    distinct = await upload_check(settings, chunked(jsonl([line(i) for i in ids]), 64 * 1024))
    assert distinct is not None and distinct.requests == len(ids)
    ids[second] = ids[first]
    assert await upload_check(settings, chunked(jsonl([line(i) for i in ids]), 64 * 1024)) is None


async def test_a_failing_check_costs_the_summary_never_the_upload(tmp_path, caplog):
    (tmp_path / "tmp").write_bytes(b"not a folder")  # the scratch file for repeated ids cannot be made
    chunks = chunked(jsonl(MIXED), 16)
    assert len(chunks) > QUEUED_CHUNKS, "the upload must get past more chunks than may wait for the thread"
    with caplog.at_level(logging.ERROR, logger="batchgate.api"):
        assert await asyncio.wait_for(upload_check(settings_in(tmp_path), chunks), 30) is None
    assert "checking an upload's lines failed" in caplog.text


async def test_a_check_that_dies_costs_the_summary_never_the_upload(tmp_path, caplog):
    """The child process checking the lines is killed mid-upload: the upload takes every chunk still."""
    checker = UploadCheck(settings_in(tmp_path))
    chunks = chunked(jsonl(MIXED), 16)
    await checker.feed(chunks[0])
    while checker.child is None or checker.child.pid is None:
        await asyncio.sleep(0.01)
    checker.child.kill()
    with caplog.at_level(logging.ERROR, logger="batchgate.api"):
        for chunk in chunks[1:]:
            await asyncio.wait_for(checker.feed(chunk), 30)
        assert await asyncio.wait_for(checker.summary(), 30) is None
    assert "checking an upload's lines failed" in caplog.text


def test_the_check_in_the_child_is_the_same_check():
    """What the child runs, run here: the summary of chunks taken one by one."""
    data = jsonl(MIXED)
    pieces = iter(chunked(data, 5))
    with tempfile.TemporaryDirectory() as scratch:
        assert check_chunks(lambda: next(pieces, None), LIMITS, Path(scratch)) == check([data])


def test_the_child_answers_a_bad_file_with_its_first_error_as_validation_words_it():
    lines = [line("a"), b"", line("b"), line("c", method="GET"), line("a")]
    pieces = iter([jsonl(lines)])
    with tempfile.TemporaryDirectory() as scratch:
        error = check_chunks(lambda: next(pieces, None), LIMITS, Path(scratch))
    assert isinstance(error, LineError) and (error.line, error.code) == (4, "invalid_method")


def test_the_child_answers_a_repeat_before_any_line_error_with_no_verdict_of_its_own():
    """Its set of ids only knows that one came again; the batch's validation names both lines."""
    lines = [line("a"), b"", line("b"), line("a"), line("c", method="GET")]
    pieces = iter([jsonl(lines)])
    with tempfile.TemporaryDirectory() as scratch:
        assert check_chunks(lambda: next(pieces, None), LIMITS, Path(scratch)) is None


async def test_an_abandoned_upload_ends_its_thread(tmp_path):
    checker = UploadCheck(settings_in(tmp_path))
    await checker.feed(jsonl(MIXED[:5]))
    checker.close()
    for _ in range(500):  # the thread removes its scratch file as it ends
        if not list((tmp_path / "tmp").glob("ids-*")):
            break
        await asyncio.sleep(0.01)
    assert list((tmp_path / "tmp").glob("ids-*")) == []


async def until(condition, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


def settle_spares() -> None:
    """Let every upload's thread end (each starts a spare as it does), then end the spare."""
    for thread in threading.enumerate():
        if thread.name == "upload-check":
            thread.join(10)
    SPARE.close()


@pytest.fixture
def no_spare():
    settle_spares()  # none left by an earlier test
    yield
    settle_spares()


def spare_for(settings: Settings) -> bool:
    """Whether a spare checker waits for uploads under `settings`."""
    command = arguments(LineLimits.of(settings), settings.data_dir / "tmp")
    return SPARE._spare is not None and SPARE._command == command


async def test_the_next_upload_is_checked_by_a_spare_started_when_the_last_check_ended(tmp_path, no_spare):
    settings = settings_in(tmp_path)
    first = UploadCheck(settings)
    await first.feed(jsonl(MIXED))
    assert await first.summary() == check([jsonl(MIXED)])
    await until(lambda: spare_for(settings))
    spare = SPARE._spare
    assert spare.pid != first.child.pid and spare.poll() is None
    assert list((tmp_path / "tmp").glob("ids-*")) == [], "a waiting spare has made no scratch file yet"

    second = UploadCheck(settings)
    await second.feed(jsonl(MIXED))
    assert await second.summary() == check([jsonl(MIXED)])
    assert second.child is spare
    assert spare.wait(10) == 0, "each checker checks one file and exits"


async def test_a_spare_for_other_settings_or_a_dead_one_is_not_used(tmp_path, no_spare):
    first = UploadCheck(settings_in(tmp_path / "a"))
    assert await first.summary() is None  # an empty file: no summary
    await until(lambda: spare_for(settings_in(tmp_path / "a")))
    other = SPARE._spare
    second = UploadCheck(settings_in(tmp_path / "b"))  # other scratch folder: other command line
    await second.feed(jsonl(MIXED))
    assert await second.summary() == check([jsonl(MIXED)])
    assert second.child is not other
    other.wait(10)  # the unusable spare was ended (TimeoutExpired otherwise)

    await until(lambda: spare_for(settings_in(tmp_path / "b")))  # the settings last used
    SPARE._spare.kill()
    SPARE._spare.wait()
    third = UploadCheck(settings_in(tmp_path / "b"))
    await third.feed(jsonl(MIXED))
    assert await third.summary() == check([jsonl(MIXED)])


def test_a_closed_spare_ends_without_a_scratch_file(tmp_path, no_spare):
    SPARE.replenish(arguments(LIMITS, tmp_path))
    spare = SPARE._spare
    SPARE.close()
    assert SPARE._spare is None
    spare.wait(10)  # TimeoutExpired if it were still waiting
    assert list(tmp_path.glob("ids-*")) == []


def test_a_spare_for_other_settings_is_replaced_by_one_for_the_new(tmp_path, no_spare):
    SPARE.replenish(arguments(LIMITS, tmp_path / "a"))
    old = SPARE._spare
    SPARE.replenish(arguments(LIMITS, tmp_path / "a"))
    assert SPARE._spare is old, "a live spare for the same settings is kept"
    SPARE.replenish(arguments(LIMITS, tmp_path / "b"))
    assert SPARE._spare is not old and SPARE._spare.poll() is None
    old.wait(10)  # ended (TimeoutExpired otherwise)


# --- check_file: the offline check, for `batchgate validate FILE` ---------------------------------------------


def test_check_file_names_every_error_with_its_line_and_sums_up_the_file():
    lines = [line("a"), b"", line("b", model="n"), line("a"), line("c", method="GET"), b"{oops"]
    data = jsonl(lines)
    verdict = check_file([data[:7], data[7:40], data[40:]], CHAT, LIMITS)
    assert [(e.line, e.code) for e in verdict.errors] == [
        (4, "duplicate_custom_id"),
        (5, "invalid_method"),
        (6, "invalid_json_line"),
    ]
    assert "already used on line 1" in verdict.errors[0].message
    assert (verdict.ok, verdict.error_count, verdict.requests, verdict.models, verdict.endpoint) == (
        False,
        3,
        5,
        {"m", "n"},
        CHAT,
    )


def test_check_file_learns_the_endpoint_from_the_first_request_when_not_told():
    good = check_file([jsonl([b"", line("a", url="/v1/embeddings"), line("b", url="/v1/embeddings")])], None, LIMITS)
    assert (good.ok, good.requests, good.endpoint, good.models) == (True, 2, "/v1/embeddings", {"m"})
    mixed = check_file([jsonl([line("a", url="/v1/embeddings"), line("b")])], None, LIMITS)
    assert [(e.line, e.code) for e in mixed.errors] == [(2, "url_mismatch")]


def test_check_file_refuses_a_file_without_requests():
    verdict = check_file([b"\n  \n"], CHAT, LIMITS)
    assert [(e.line, e.code) for e in verdict.errors] == [(1, "empty_file")]
