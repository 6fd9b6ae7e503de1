"""Helpers for lifecycle tests: config text, input files, an OpenAI client, polling, file checks."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from openai import OpenAI

from tests.support.servers import Gateway, free_port

TERMINAL = ("completed", "failed", "expired", "cancelled")
CHAT = "/v1/chat/completions"


def config(*upstreams: dict, extra: str = "") -> str:
    """TOML with settings lines in `extra` and one [[upstreams]] table per dict (any UpstreamConfig keys)."""
    tables = []
    for table in upstreams:
        table = {"models": ["*"], **table}
        tables.append("[[upstreams]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    return extra + "\n" + "\n".join(tables)


def closed_port_url() -> str:
    """A base_url on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"


def chat_line(custom_id: str, text: str, model: str = "m") -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def jsonl(lines: Iterable[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def client(gateway: Gateway) -> OpenAI:
    # No SDK retries: a failing call must show up as a failure, not be papered over.
    return OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, timeout=30)


def start_batch(api: OpenAI, lines: list[dict], max_concurrency: int | None = None, filename: str = "in.jsonl"):
    """Upload `lines` and create a chat batch over them; returns (file, batch)."""
    file = api.files.create(file=(filename, jsonl(lines)), purpose="batch")
    extra = {"max_concurrency": max_concurrency} if max_concurrency else None
    batch = api.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h", extra_body=extra)
    return file, batch


def wait_status(
    api: OpenAI, batch_id: str, statuses: Iterable[str] = TERMINAL, timeout: float = 40.0, interval: float = 0.05
):
    statuses = tuple(statuses)
    deadline = time.monotonic() + timeout
    while True:
        batch = api.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status!r} after {timeout}s (wanted {statuses})")
        time.sleep(interval)


def wait_until(predicate, timeout: float = 40.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


def file_lines(api: OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    raw = api.files.content(file_id).read()
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def outputs(api: OpenAI, batch) -> tuple[list[dict], list[dict]]:
    """(output file lines, error file lines) of a terminal batch."""
    return file_lines(api, batch.output_file_id), file_lines(api, batch.error_file_id)


def assert_partition(output: list[dict], errors: list[dict], custom_ids: Iterable[str]) -> None:
    """I1: output ∪ errors hold every custom_id exactly once; output lines are 2xx answers."""
    custom_ids = list(custom_ids)
    seen = [line["custom_id"] for line in output + errors]
    duplicates = sorted(c for c, n in Counter(seen).items() if n > 1)
    assert not duplicates, f"custom_ids present more than once: {duplicates[:10]}"
    assert sorted(seen) == sorted(custom_ids), (
        f"missing {sorted(set(custom_ids) - set(seen))[:10]}, unexpected {sorted(set(seen) - set(custom_ids))[:10]}"
    )
    for line in output:
        assert line["error"] is None and 200 <= line["response"]["status_code"] < 300, line
    for line in errors:
        assert line["error"] is not None, line


def assert_counts(batch, lines: int) -> None:
    """I2 once terminal: total = completed + failed = number of lines."""
    counts = batch.request_counts
    assert counts.total == lines, counts
    assert counts.completed + counts.failed == counts.total, counts


def texts_of(requests: list[dict]) -> list[str]:
    return [r["text"] for r in requests]


def recorded_lines(db_path: Path, batch_id: str) -> dict[int, bool]:
    """line → ok for every result row durably recorded for `batch_id` (read straight from SQLite)."""
    db = sqlite3.connect(db_path, timeout=10)
    try:
        return dict(db.execute("SELECT line, ok FROM results WHERE batch_id = ?", (batch_id,)).fetchall())
    finally:
        db.close()


def db_batch(db_path: Path, batch_id: str) -> dict:
    db = sqlite3.connect(db_path, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return dict(row) if row else {}
    finally:
        db.close()


def shard_owners(db_path: Path, batch_id: str) -> str:
    """The lease owners of the batch's shards, space-separated (read straight from SQLite)."""
    db = sqlite3.connect(db_path, timeout=10)
    try:
        rows = db.execute(
            "SELECT lease_owner FROM shards WHERE batch_id = ? AND lease_owner IS NOT NULL ORDER BY shard", (batch_id,)
        ).fetchall()
        return " ".join(owner for (owner,) in rows)
    finally:
        db.close()


def serve_log(gateway: Gateway) -> str:
    path = gateway.folder / "serve.log"
    return path.read_text(errors="replace") if path.exists() else ""


def stop_mock(mock) -> None:
    """Stop a mock that may still be sleeping on requests: SIGTERM, then SIGKILL after a second."""
    mock.process.terminate()
    try:
        mock.process.wait(1)
    except subprocess.TimeoutExpired:
        mock.process.kill()
        mock.process.wait(10)


def freeze_outside_writes(process: subprocess.Popen, db_path: Path, tries: int = 200) -> int:
    """SIGSTOP `process` at a moment it holds no SQLite write lock; return how many freezes it took.

    A process frozen inside a write transaction stops every other writer until it wakes (SQLite has
    one writer at a time), so a freeze there would test SQLite's lock, not the leases.
    """
    for attempt in range(1, tries + 1):
        process.send_signal(signal.SIGSTOP)
        wait_until(lambda: _stopped(process.pid), timeout=5, interval=0.001, what="the process to stop")
        probe = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return attempt
        except sqlite3.OperationalError:  # frozen mid-transaction: thaw, let it commit, try again
            process.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        finally:
            probe.close()
    raise AssertionError(f"the process held SQLite's write lock at each of {tries} freezes")


def _stopped(pid: int) -> bool:
    """Every thread of `pid` is stopped (state T in /proc): a signal is delivered, not only sent."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    return all(state == "T" for state in states)


def start_worker(gateway: Gateway, log_name: str = "worker.log", args: tuple[str, ...] = ()) -> subprocess.Popen:
    """A `batchgate worker` process (scale-out) on the gateway's data dir, config and environment, plus `args`."""
    with open(gateway.folder / log_name, "ab") as log:  # the worker keeps its own descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchgate",
                "worker",
                "--data-dir",
                str(gateway.data_dir),
                "--config",
                str(gateway.config_path),
                *args,
            ],
            env={**gateway.env, "BATCHGATE_NO_WORKER": "0"},
            stderr=log,
        )


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
