"""`batchgate files …` and `batchgate batches …` against a live gateway (DESIGN.md §5): output and exit codes."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.cli import batchgate, client_env, one_error_line
from tests.support.lifecycle import CHAT, chat_line, jsonl
from tests.support.plan_lines import grouped_lines
from tests.support.servers import free_port


@pytest.fixture
def env(gateway):
    return client_env(gateway)


@pytest.fixture
def input_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([chat_line("a", "hello"), chat_line("b", "world")]))
    return path


def upload(env, path) -> dict:
    result = batchgate("files", "upload", str(path), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_files_upload_list_get_content_delete(env, input_file, tmp_path):
    file = upload(env, input_file)
    assert file["object"] == "file" and file["purpose"] == "batch" and file["filename"] == "in.jsonl"

    listed = batchgate("files", "list", "--jq", ".data[].id", env=env)
    assert listed.returncode == 0 and file["id"] in listed.stdout.splitlines()  # strings raw, one per line

    got = batchgate("files", "get", file["id"], env=env)
    assert json.loads(got.stdout)["bytes"] == input_file.stat().st_size

    content = batchgate("files", "content", file["id"], env=env)
    assert content.returncode == 0 and content.stdout == input_file.read_text()
    saved = tmp_path / "copy" / "saved.jsonl"
    assert batchgate("files", "content", file["id"], "-o", str(saved), env=env).returncode == 0
    assert saved.read_bytes() == input_file.read_bytes()

    deleted = batchgate("files", "delete", file["id"], env=env)
    assert deleted.returncode == 0 and json.loads(deleted.stdout)["deleted"] is True
    gone = batchgate("files", "get", file["id"], env=env)
    assert gone.returncode == 1 and file["id"] in one_error_line(gone)


def test_batches_create_get_list_and_cancel(env, tmp_path):
    slow = tmp_path / "slow.jsonl"  # 30 answers the mock upstream holds 1 s each, 2 at a time: still running
    slow.write_bytes(jsonl(chat_line(f"r{i}", f"[sleep:1] {i}") for i in range(30)))
    file = upload(env, slow)
    created = batchgate(
        "batches", "create", "--input-file-id", file["id"], "--endpoint", CHAT,
        "--metadata", "team=eval", "--metadata", "run=7", "--max-concurrency", "2",
        env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    batch = json.loads(created.stdout)
    assert batch["metadata"] == {"team": "eval", "run": "7"} and batch["max_concurrency"] == 2

    got = batchgate("batches", "get", batch["id"], "--jq", ".metadata.team, .request_counts.total", env=env)
    assert got.stdout.splitlines()[0] == "eval"

    page = batchgate("batches", "list", "--limit", "5", env=env)
    assert [b["id"] for b in json.loads(page.stdout)["data"]] == [batch["id"]]

    cancelled = batchgate("batches", "cancel", batch["id"], env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] in ("cancelling", "cancelled")


def test_cancelling_a_completed_batch_is_a_refusal_with_the_api_message(env, input_file):
    ran = batchgate("run", str(input_file), env=env)
    assert ran.returncode == 0, ran.stderr
    batch_id = re.search(r"batch (batch_\w+) completed", ran.stderr).group(1)
    refused = batchgate("batches", "cancel", batch_id, env=env)
    assert refused.returncode == 1
    assert f"Cannot cancel batch {batch_id}: its status is 'completed'. (HTTP 409)" in one_error_line(refused)


def test_batches_retry_makes_a_batch_of_the_failed_lines(env, tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(jsonl([chat_line("good", "fine"), chat_line("bad", "refused [status:400]")]))
    ran = batchgate("run", str(mixed), env=env)
    assert ran.returncode == 1, ran.stderr  # completed with a failed line
    batch_id = re.search(r"batch (batch_\w+) completed", ran.stderr).group(1)
    retried = batchgate("batches", "retry", batch_id, env=env)
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert again["metadata"] == {"retry_of": batch_id} and again["id"] != batch_id
    content = batchgate("files", "content", again["input_file_id"], env=env)
    assert [json.loads(line)["custom_id"] for line in content.stdout.splitlines()] == ["bad"]
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(jsonl([chat_line("good", "fine")]))
    ran = batchgate("run", str(clean), env=env)
    clean_id = re.search(r"batch (batch_\w+) completed", ran.stderr).group(1)
    nothing = batchgate("batches", "retry", clean_id, env=env)
    assert nothing.returncode == 1
    assert f"Batch {clean_id} has no failed lines to retry. (HTTP 409)" in one_error_line(nothing)


def test_table_output_for_people(env, input_file):
    file = upload(env, input_file)
    one = batchgate("files", "get", file["id"], "--output", "table", env=env)
    assert one.returncode == 0
    assert "filename" in one.stdout and file["id"] in one.stdout and "in.jsonl" in one.stdout
    batchgate("batches", "create", "--input-file-id", file["id"], "--endpoint", CHAT, env=env)
    page = batchgate("batches", "list", "--output", "table", env=env)
    assert "status" in page.stdout and "endpoint" in page.stdout and CHAT in page.stdout
    assert "batch_" in page.stdout


def test_jq_prints_non_strings_as_json(env, input_file):
    upload(env, input_file)
    result = batchgate("files", "list", "--jq", "{n: (.data | length), first: .data[0].purpose}", env=env)
    assert json.loads(result.stdout) == {"n": 1, "first": "batch"}


def test_on_behalf_of_scopes_what_a_command_sees(gateway, input_file):
    alice = client_env(gateway, BATCHGATE_ON_BEHALF_OF="alice")
    file = upload(alice, input_file)
    assert batchgate("files", "get", file["id"], "--on-behalf-of", "alice", env=client_env(gateway)).returncode == 0
    hidden = batchgate("files", "get", file["id"], env=client_env(gateway))
    assert hidden.returncode == 1 and "No file found" in one_error_line(hidden)


def test_an_unreachable_server_is_exit_3(input_file):
    env = client_env(BATCHGATE_API_KEY="bg-anything")
    result = batchgate("batches", "list", "--server-url", f"http://127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 3
    assert "cannot reach the server at http://127.0.0.1:" in one_error_line(result)


def test_a_bad_key_is_exit_1(gateway):
    result = batchgate("files", "list", "--api-key", "bg-not-a-key", env=client_env(gateway))
    assert result.returncode == 1 and "refused the API key (HTTP 401)" in one_error_line(result)


def test_an_unknown_id_is_exit_1(env):
    result = batchgate("batches", "get", "batch_" + "0" * 32, env=env)
    assert result.returncode == 1
    assert "No batch found with id 'batch_00000000000000000000000000000000'" in one_error_line(result)


def test_another_refusal_is_exit_1_with_the_api_message(env, input_file):
    file = upload(env, input_file)
    result = batchgate("batches", "create", "--input-file-id", file["id"], "--endpoint", "/v1/nowhere", env=env)
    assert result.returncode == 1 and "(HTTP 400)" in one_error_line(result) and "endpoint" in result.stderr


@pytest.fixture
def failing_server():
    """A real HTTP server that answers 503 with an API error body to everything."""

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"message": "the database is unreachable", "type": "server_error"}}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_5xx_is_exit_3(failing_server):
    result = batchgate("batches", "list", env=client_env(BATCHGATE_URL=failing_server, BATCHGATE_API_KEY="bg-x"))
    assert result.returncode == 3
    assert "the server failed (HTTP 503): the database is unreachable" in one_error_line(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["batches", "create", "--endpoint", CHAT], "--input-file-id"),
        (["batches", "create", "--input-file-id", "f", "--endpoint", CHAT, "--metadata", "novalue"], "KEY=VALUE"),
        (["files", "list", "--limit", "zero"], "positive whole number"),
        (["files", "list", "--jq", ".data[", "--api-key", "k"], "bad --jq expression"),
        (["files", "list", "--jq", ".", "--output", "table"], "not allowed with"),
        (["files", "upload", "/no/such/file.jsonl", "--api-key", "k"], "no such file"),
        (["batches", "list", "--server-url", "localhost:8080", "--api-key", "k"], "must start with http://"),
        (["batches", "list"], "no API key"),
    ],
)
def test_bad_usage_is_exit_2(args, message):
    result = batchgate(*args, env=client_env())
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command", [["files", "upload"], ["files", "list"], ["batches", "create"], ["batches", "get"], ["run"], ["watch"]]
)
def test_the_server_flags_name_their_environment_variables(command):
    text = batchgate(*command, "--help", env=client_env()).stdout
    for variable in ("BATCHGATE_URL", "BATCHGATE_API_KEY", "BATCHGATE_ON_BEHALF_OF"):
        assert variable in text


def test_batches_create_dry_run_prints_the_plan_and_creates_nothing(env, tmp_path):
    path = tmp_path / "grouped.jsonl"
    path.write_bytes(jsonl(grouped_lines(group=6, alone=1)))
    file = upload(env, path)
    planned = batchgate(
        "batches", "create", "--input-file-id", file["id"], "--endpoint", CHAT, "--dry-run", env=env
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["object"] == "batch.plan" and (plan["lines"], plan["prefix_groups"]) == (7, 1)
    assert json.loads(batchgate("batches", "list", env=env).stdout)["data"] == []

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    refused = batchgate(
        "batches", "create", "--input-file-id", upload(env, bad)["id"], "--endpoint", CHAT, "--dry-run", env=env
    )  # fmt: skip
    assert refused.returncode == 1 and "Line 1 is not valid JSON" in one_error_line(refused)
