"""`batchgate run` and `batchgate watch` on real batches: results, exit codes, Ctrl-C, reattaching."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.support.cli import Child, batchgate, client_env, one_error_line
from tests.support.lifecycle import chat_line, jsonl
from tests.support.servers import MockUpstream, free_port, upstream_config


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def slow_gateway(make_gateway, tmp_path):
    """A gateway whose upstream takes a while per request, so a batch run one line at a time can be watched."""
    upstream = MockUpstream(tmp_path, 0.3)
    yield make_gateway(upstream_config(("slow", upstream.base_url, ["*"])))
    upstream.stop()


def slow_file(tmp_path, count: int = 40):
    path = tmp_path / "slow.jsonl"
    path.write_bytes(jsonl(chat_line(f"r{i}", f"line {i}") for i in range(count)))
    return path


def test_run_writes_output_and_errors_and_exits_1_when_some_lines_failed(gateway, tmp_path):
    path = tmp_path / "job.jsonl"
    path.write_bytes(jsonl([chat_line("ok-1", "one"), chat_line("bad", "[status:400] no"), chat_line("ok-2", "two")]))
    result = batchgate("run", str(path), "--metadata", "team=eval", env=client_env(gateway))
    assert result.returncode == 1, result.stderr
    output, errors = lines_of(tmp_path / "job.output.jsonl"), lines_of(tmp_path / "job.errors.jsonl")
    assert sorted(line["custom_id"] for line in output) == ["ok-1", "ok-2"]
    assert [line["custom_id"] for line in errors] == ["bad"] and errors[0]["response"]["status_code"] == 400
    assert "completed: 2 ok, 1 failed of 3" in result.stderr
    # Without a terminal, progress is plain lines on stderr.
    assert re.search(r"batch_\w+ \w+: \d+/\d+ done, \d+ failed, ", result.stderr)


def test_run_with_every_line_good_exits_0_and_writes_no_error_file(gateway, tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_bytes(jsonl([chat_line("a", "one"), chat_line("b", "two")]))
    out = tmp_path / "answers" / "out.jsonl"
    result = batchgate(
        "run", str(path), "-o", str(out), "--errors", str(tmp_path / "err.jsonl"), env=client_env(gateway)
    )
    assert result.returncode == 0, result.stderr
    assert {
        line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in lines_of(out)
    } == {
        "a": "echo: one",
        "b": "echo: two",
    }
    assert not (tmp_path / "err.jsonl").exists() and not (tmp_path / "good.errors.jsonl").exists()


def test_run_of_a_file_the_batch_refuses_exits_2_and_shows_the_validation_errors(gateway, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(chat_line("a", "one")) + "\n{not json\n")
    result = batchgate("run", str(path), env=client_env(gateway))
    assert result.returncode == 2, result.stderr
    assert "line 2: invalid_json_line:" in result.stderr and " failed: 0 ok" in result.stderr
    assert not (tmp_path / "broken.output.jsonl").exists()


def test_run_asks_for_an_endpoint_when_the_lines_do_not_name_one(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    embed = {**chat_line("b", "x"), "url": "/v1/embeddings"}
    mixed.write_bytes(jsonl([chat_line("a", "x"), embed]))
    result = batchgate("run", str(mixed), env=client_env(BATCHGATE_API_KEY="bg-x"))
    assert result.returncode == 2 and "more than one url" in one_error_line(result) and "--endpoint" in result.stderr
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text('{"custom_id": "a"}\n')
    result = batchgate("run", str(nameless), env=client_env(BATCHGATE_API_KEY="bg-x"))
    assert result.returncode == 2 and "names a 'url'" in one_error_line(result)


def test_ctrl_c_then_cancel_cancels_the_batch_and_downloads_what_exists(slow_gateway, tmp_path):
    path = slow_file(tmp_path)
    with Child("run", str(path), "--max-concurrency", "1", env=client_env(slow_gateway)) as child:
        child.wait_for(" created over ")
        child.wait_for("in_progress")
        child.process.send_signal(signal.SIGINT)
        child.wait_for("[c]ancel / [l]eave")
        child.answer("c")
        assert child.finish() == 2, child.stderr
    assert "cancelling batch" in child.stderr and " cancelled: " in child.stderr
    output = lines_of(tmp_path / "slow.output.jsonl")
    errors = lines_of(tmp_path / "slow.errors.jsonl")
    assert len(output) + len(errors) == 40 and len(output) < 40
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}


def test_ctrl_c_then_leave_keeps_it_running_and_watch_reattaches(slow_gateway, tmp_path):
    path = slow_file(tmp_path, 20)
    env = client_env(slow_gateway)
    with Child("run", str(path), "--max-concurrency", "2", env=env) as child:
        child.wait_for(" created over ")
        child.process.send_signal(signal.SIGINT)
        child.wait_for("[c]ancel / [l]eave")
        child.answer("leave")
        assert child.finish() == 130, child.stderr
    batch_id = re.search(r"batchgate watch (batch_\w+)", child.stderr).group(1)
    assert not (tmp_path / "slow.output.jsonl").exists()

    here = tmp_path / "elsewhere"
    here.mkdir()
    watched = batchgate("watch", batch_id, env=env, cwd=here)
    assert watched.returncode == 0, watched.stderr
    assert len(lines_of(here / f"{batch_id}.output.jsonl")) == 20
    assert not (here / f"{batch_id}.errors.jsonl").exists()


def test_watch_of_an_unknown_batch_is_exit_1(gateway):
    result = batchgate("watch", "batch_" + "f" * 32, env=client_env(gateway))
    assert result.returncode == 1 and "No batch found" in one_error_line(result)


def test_run_against_an_unreachable_server_is_exit_3(tmp_path):
    path = tmp_path / "job.jsonl"
    path.write_bytes(jsonl([chat_line("a", "one")]))
    env = client_env(BATCHGATE_URL=f"http://127.0.0.1:{free_port()}", BATCHGATE_API_KEY="bg-x")
    result = batchgate("run", str(path), env=env)
    assert result.returncode == 3 and "cannot reach the server" in one_error_line(result)


def test_run_waits_out_a_restart_of_the_server(slow_gateway, tmp_path):
    path = slow_file(tmp_path, 20)
    with Child("run", str(path), "--max-concurrency", "2", env=client_env(slow_gateway)) as child:
        child.wait_for(" in_progress: ")
        slow_gateway.stop()
        child.wait_for("trying again")
        slow_gateway.start()
        assert child.finish() == 0, child.stderr
    assert sorted(line["custom_id"] for line in lines_of(tmp_path / "slow.output.jsonl")) == sorted(
        f"r{i}" for i in range(20)
    )


def test_a_refused_batch_leaves_no_uploaded_file_behind(gateway, tmp_path):
    path = tmp_path / "job.jsonl"
    path.write_bytes(jsonl([chat_line("a", "one")]))
    env = client_env(gateway)
    result = batchgate("run", str(path), "--completion-window", "8d", env=env)
    assert result.returncode == 1 and "(HTTP 400)" in one_error_line(result) and "8d" in result.stderr
    assert batchgate("files", "list", "--jq", ".data | length", env=env).stdout.strip() == "0"
