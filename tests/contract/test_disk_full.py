"""A full disk under a live gateway: writes answer 507, deletes free space, reads go on, a batch pauses and resumes.

The data dir is a small tmpfs of its own, filled by a big file written beside the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.contract.conftest import (
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    multipart,
    parse_jsonl,
    request_line,
    serve_log,
    upload_raw,
    wait_batch_raw,
    wait_until,
)
from tests.support.servers import Gateway, MockUpstream, upstream_config

DISK_MB = 32
LINES = 30


@contextlib.contextmanager
def small_disk(folder: Path):
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs as a small disk here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def slow_upstream(tmp_path):
    upstream = MockUpstream(tmp_path, 0.2)
    yield upstream
    upstream.stop()


@pytest.fixture
def full_disk_gateway(tmp_path, slow_upstream):
    folder = tmp_path / "gw"
    with small_disk(folder / "data"):
        gateway = Gateway(folder, upstream_config(("slow", slow_upstream.base_url, ["*"])))
        try:
            yield gateway
        finally:
            gateway.stop()


def fill(disk: Path) -> Path:
    """Write a file beside the data until the disk refuses another byte."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


def free_bytes(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def counts(gateway: Gateway, batch_id: str) -> dict:
    reply = http(gateway, "GET", f"{OPENAI}/batches/{batch_id}")
    assert reply.status == 200, reply.body
    return reply.json


def test_a_full_disk_refuses_writes_lets_deletes_free_space_and_pauses_a_batch(full_disk_gateway):
    gateway, disk = full_disk_gateway, full_disk_gateway.data_dir
    spare = upload_raw(gateway, jsonl([request_line(f"s{i}", "x" * 900) for i in range(1200)])).json  # ~1.3 MB
    kept = upload_raw(gateway, jsonl([request_line("k", "kept")])).json
    source = upload_raw(gateway, jsonl([request_line(f"c{i}", f"line {i}") for i in range(LINES)])).json
    batch = create_batch_raw(gateway, source["id"], max_concurrency=2).json
    wait_until(
        lambda: counts(gateway, batch["id"]),
        lambda b: b["request_counts"]["completed"] >= 2,
        what="the batch under way",
    )

    filler = fill(disk)
    refused = assert_error_reply(upload_raw_allowing_5xx(gateway, jsonl([request_line("n", "new")])), 507)
    assert refused["code"] == "insufficient_storage" and "delet" in refused["message"].lower(), refused
    created = create_batch_raw_allowing_5xx(gateway, kept["id"])
    assert created.status == 200 or assert_error_reply(created, 507)["code"] == "insufficient_storage"

    # Reads go on while the disk is full, and the running batch waits instead of failing.
    assert_files_intact(gateway)
    paused = counts(gateway, batch["id"])
    time.sleep(1.5)
    assert counts(gateway, batch["id"])["status"] == "in_progress", "the batch must pause, not end"
    assert counts(gateway, batch["id"])["request_counts"]["completed"] < LINES, paused

    before = free_bytes(disk)
    deleted = http(gateway, "DELETE", f"{OPENAI}/files/{spare['id']}", allow_5xx=True)
    assert deleted.status == 200, deleted.body
    assert free_bytes(disk) > before + 1_000_000, "deleting a file freed no space"
    assert http(gateway, "GET", f"{OPENAI}/files/{spare['id']}").status == 404

    filler.unlink()  # space comes back: the batch resumes by itself
    done = wait_batch_raw(gateway, batch["id"])
    assert done["status"] == "completed", done
    assert_every_line_once(gateway, done)
    assert_files_intact(gateway)
    with contextlib.closing(sqlite3.connect(disk / "batchgate.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    log = serve_log(gateway)
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]


def upload_raw_allowing_5xx(gateway: Gateway, content: bytes):
    body, ctype = multipart([("purpose", None, b"batch", None), ("file", "in.jsonl", content, None)])
    return http(gateway, "POST", f"{OPENAI}/files", body=body, content_type=ctype, allow_5xx=True)


def create_batch_raw_allowing_5xx(gateway: Gateway, file_id: str):
    payload = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return http(gateway, "POST", f"{OPENAI}/batches", body=payload, allow_5xx=True)


def assert_files_intact(gateway: Gateway) -> None:
    listed = http(gateway, "GET", f"{OPENAI}/files")
    assert listed.status == 200, listed.body
    for file in listed.json["data"]:
        assert http(gateway, "GET", f"{OPENAI}/files/{file['id']}").status == 200
        content = http(gateway, "GET", f"{OPENAI}/files/{file['id']}/content")
        assert content.status == 200 and hashlib.sha256(content.body).hexdigest() == file["sha256"], file


def assert_every_line_once(gateway: Gateway, batch: dict) -> None:
    lines = []
    for file_id in (batch["output_file_id"], batch["error_file_id"]):
        if file_id:
            lines += parse_jsonl(http(gateway, "GET", f"{OPENAI}/files/{file_id}/content").body)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"c{i}" for i in range(LINES))
