"""File retention: the worker's sweeper deletes expired files (record and bytes), but never one in use."""

from __future__ import annotations

import asyncio
import os
import time

import openai
import pytest

from batchgate.blobs import open_blobs
from batchgate.domain.records import BatchRecord, FileRecord, Scope
from batchgate.domain.status import BatchStatus as S
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.router import Router
from batchgate.worker.batch_run import BatchRun
from batchgate.worker.context import WorkerContext
from batchgate.worker.worker import Worker
from tests.support.lifecycle import (
    assert_counts,
    assert_partition,
    chat_line,
    client,
    closed_port_url,
    config,
    jsonl,
    outputs,
    start_batch,
    stop_mock,
    wait_status,
    wait_until,
)
from tests.support.servers import MockUpstream

RETENTION = {"BATCHGATE_FILE_RETENTION_SECONDS": "2", "BATCHGATE_RETENTION_INTERVAL_SECONDS": "0.5"}


def blob_path(gw, file_id: str):
    return gw.data_dir / "files" / file_id[-2:] / file_id


def gone(api, file_id: str) -> bool:
    try:
        api.files.retrieve(file_id)
    except openai.NotFoundError:
        return True
    return False


@pytest.fixture
def slow_mock(tmp_path):
    mock = MockUpstream(tmp_path, latency=0.5)
    yield mock
    stop_mock(mock)


def test_an_uploaded_file_is_deleted_after_its_retention(make_gateway, mock_upstream):
    gw = make_gateway(config({"name": "mock", "base_url": mock_upstream.base_url}), env=RETENTION)
    api = client(gw)
    file = api.files.create(file=("keep-briefly.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    assert file.expires_at == file.created_at + 2
    assert blob_path(gw, file.id).is_file()
    assert api.files.retrieve(file.id).id == file.id

    wait_until(lambda: gone(api, file.id), timeout=10, interval=0.1, what="file deleted by retention")
    assert time.time() >= file.expires_at, "deleted before it expired"
    assert not blob_path(gw, file.id).exists(), "the bytes must go with the record"
    with pytest.raises(openai.NotFoundError):
        api.files.content(file.id)
    assert file.id not in [f.id for f in api.files.list()]


def test_an_input_file_outlives_its_retention_while_its_batch_runs(make_gateway, slow_mock):
    gw = make_gateway(config({"name": "mock", "base_url": slow_mock.base_url}), env=RETENTION)
    api = client(gw)
    texts = {f"r{i}": f"retained {i}" for i in range(24)}  # 12 rounds of 0.5 s: about 6 s
    file, batch = start_batch(api, [chat_line(c, t) for c, t in texts.items()], max_concurrency=2)
    # An idle file uploaded at the same time goes on schedule.
    idle = api.files.create(file=("idle.jsonl", jsonl([chat_line("a", "idle")])), purpose="batch")

    wait_until(lambda: gone(api, idle.id), timeout=10, interval=0.1, what="idle file deleted")
    # Two more sweeps (0.5 s apart) past the input file's own expires_at.
    wait_until(lambda: time.time() >= max(file.expires_at, idle.expires_at) + 1.0, timeout=5, what="two sweeps")
    running = api.batches.retrieve(batch.id)
    assert running.status == "in_progress", "the batch should still be running for this test to mean anything"
    assert time.time() >= file.expires_at + 1
    assert api.files.retrieve(file.id).id == file.id, "an input file in use must not be swept"
    assert blob_path(gw, file.id).is_file()

    done = wait_status(api, batch.id, timeout=20)
    assert done.status == "completed"
    output, errors = outputs(api, done)  # read at once: the output file has a 2 s retention too
    assert_partition(output, errors, texts)
    assert_counts(done, 24)
    assert done.request_counts.completed == 24

    wait_until(lambda: gone(api, file.id), timeout=10, interval=0.1, what="input file deleted after the batch")
    assert not blob_path(gw, file.id).exists()


# --- the sweeper against a batch created mid-sweep (in-process, deterministic) ---------------------

LINE = (
    b'{"custom_id": "only", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}\n'
)
ALICE = Scope("alice")


class BatchCreatedMidSweep:
    """The store as the sweeper sees it while `POST /batches` lands between its two steps.

    The sweeper lists expired files in one call and deletes them one by one in later calls; the API
    shares the store, so a batch may be created (it found the file) in between. `validated` also
    lets the worker validate that batch before the deletions run, as happens with a fast worker.
    """

    def __init__(self, store, file_id: str, validated: bool):
        self._store, self._file_id, self._validated = store, file_id, validated

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def expired_files(self, now: int, limit: int):
        files = await self._store.expired_files(now, limit)
        if await self._store.get_file(ALICE, self._file_id) is not None:  # what the create handler checks
            await self._store.insert_batch(
                BatchRecord(
                    "batch_mid", ALICE, "/v1/chat/completions", self._file_id, "24h", S.VALIDATING, now, now + 60, 4
                )
            )
            if self._validated:
                assert await self._store.transition("batch_mid", S.VALIDATING, S.IN_PROGRESS, now, {"total": 1})
        return files


@pytest.fixture
async def parts(tmp_path, memory_store):
    settings = Settings(
        data_dir=tmp_path,
        poll_interval_seconds=0.1,
        lease_seconds=2,
        max_attempts=1,
        upstreams=(UpstreamConfig("gone", closed_port_url()),),
    )
    store = memory_store
    blobs = open_blobs(settings.resolved_storage_url)
    router = Router(settings)

    async def one_line():
        yield LINE

    await blobs.write("file-swept", one_line())
    now = int(time.time())
    await store.insert_file(
        FileRecord("file-swept", ALICE, "in.jsonl", "batch", len(LINE), "0" * 64, "file-swept", now - 10, now - 1)
    )
    yield settings, store, blobs, router
    await router.close()


async def test_the_sweeper_keeps_a_file_that_a_batch_started_using_during_the_sweep(parts):
    """Regression: the sweeper used to delete the input file of a batch created between its two steps."""
    settings, store, blobs, router = parts
    racing = BatchCreatedMidSweep(store, "file-swept", validated=True)
    await Worker(WorkerContext(settings, racing, blobs, router, "w1")).sweep_expired_files()
    assert (await store.get_batch("batch_mid")).status is S.IN_PROGRESS
    assert await store.get_file(ALICE, "file-swept") is not None, "the input file of an unfinished batch was swept"
    assert (blobs.root / "pt" / "file-swept").is_file(), "its bytes were deleted"

    # Once that batch has ended, the next sweep takes the file.
    assert await store.transition("batch_mid", S.IN_PROGRESS, S.CANCELLING, int(time.time()))
    assert await store.transition("batch_mid", S.CANCELLING, S.CANCELLED, int(time.time()))
    assert await Worker(WorkerContext(settings, store, blobs, router, "w1")).sweep_expired_files() == 1
    assert await store.get_file(ALICE, "file-swept") is None
    assert not (blobs.root / "pt" / "file-swept").exists()


async def test_a_running_batch_whose_input_bytes_vanished_still_ends_when_its_window_does(parts):
    """Storage lost the input blob (a wiped disk, an S3 lifecycle rule) while the batch ran."""
    settings, store, blobs, router = parts
    now = int(time.time())
    await store.insert_batch(
        BatchRecord(
            "batch_lost", ALICE, "/v1/chat/completions", "file-swept", "24h", S.VALIDATING, now - 30, now - 1, 4
        )
    )  # its window is already over
    assert await store.transition("batch_lost", S.VALIDATING, S.IN_PROGRESS, now - 29, {"total": 1})
    await blobs.delete("file-swept")

    run = BatchRun(WorkerContext(settings, store, blobs, router, "w1"), "batch_lost")
    await asyncio.wait_for(run.run(), 10)
    batch = await store.get_batch("batch_lost")
    assert batch.status is S.FAILED, batch.status
    assert [e["code"] for e in batch.errors["data"]] == ["input_file_missing"]
    assert (batch.total, batch.completed, batch.failed) == (1, 0, 1)
    assert batch.output_file_id is None and batch.error_file_id is None  # nothing was answered


async def test_scratch_files_left_by_a_crash_are_swept_once_stale(parts):
    """A kill -9 mid-upload leaves a half-written blob, mid-validation a duplicate ledger."""
    settings, store, blobs, router = parts
    worker = Worker(WorkerContext(settings, store, blobs, router, "w1"))
    scratch = settings.data_dir / "tmp"
    scratch.mkdir(exist_ok=True)
    old = [blobs.root / ".partial" / "file-dead.1234", scratch / "ids-dead.db"]
    fresh = [blobs.root / ".partial" / "file-live.5678", scratch / "ids-live.db"]
    for path in old + fresh:
        path.write_bytes(b"x")
    long_ago = time.time() - settings.stale_temp_seconds - 60
    for path in old:
        os.utime(path, (long_ago, long_ago))

    assert await worker.sweep_stale_scratch() == 2
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in fresh), "files still being written must stay"


async def test_the_dispatch_copy_an_ended_batch_left_behind_is_swept_and_a_running_ones_kept(parts):
    """A crash between a planned batch's end and the delete of its dispatch copy leaves the copy behind."""
    settings, store, blobs, router = parts
    now = int(time.time())

    async def copied():
        yield b"1 1 " + LINE

    for batch_id, ended in (("batch_ended", True), ("batch_running", False)):
        await store.insert_batch(
            BatchRecord(batch_id, ALICE, "/v1/chat/completions", "file-swept", "24h", S.VALIDATING, now, now + 60, 4)
        )
        await blobs.write(f"dispatch-{batch_id}", copied())
        changes = {"total": 1, "dispatch_key": f"dispatch-{batch_id}"}
        assert await store.transition(batch_id, S.VALIDATING, S.IN_PROGRESS, now, changes)
        if ended:
            assert await store.transition(batch_id, S.IN_PROGRESS, S.CANCELLING, now)
            assert await store.transition(batch_id, S.CANCELLING, S.CANCELLED, now)

    worker = Worker(WorkerContext(settings, store, blobs, router, "w1"))
    assert await worker.sweep_dispatch_copies() == 1
    assert (await store.get_batch("batch_ended")).dispatch_key is None
    assert (await store.get_batch("batch_running")).dispatch_key == "dispatch-batch_running"
    assert not list(blobs.root.rglob("dispatch-batch_ended")), "the ended batch's copy was not deleted"
    assert list(blobs.root.rglob("dispatch-batch_running")), "a running batch's copy must stay"
    assert await worker.sweep_dispatch_copies() == 0
