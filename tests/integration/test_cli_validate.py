"""`batchgate validate FILE`: the server's own line checks, offline (no server runs in these tests)."""

from __future__ import annotations

import json

from tests.support.cli import batchgate, client_env, one_error_line
from tests.support.lifecycle import CHAT, chat_line, jsonl
from tests.support.plan_lines import grouped_lines


def validate(path, *args: str, **env: str):
    return batchgate("validate", str(path), *args, env=client_env(**env))


def test_a_valid_file_exits_0_with_a_summary(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_bytes(jsonl([chat_line("a", "x", model="m1"), chat_line("b", "y", model="m2")]) + b"\n")
    result = validate(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"{path}: 3 lines, 2 requests, models: m1, m2, endpoint: {CHAT}: valid" in result.stderr


def test_every_problem_is_one_line_with_its_number_and_code(tmp_path):
    embed = {**chat_line("c", "x"), "url": "/v1/embeddings"}
    no_model = chat_line("d", "x")
    del no_model["body"]["model"]
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(chat_line("a", "x")),
                "{not json",
                json.dumps(chat_line("a", "again")),
                json.dumps(embed),
                json.dumps(no_model),
            ]
        )
        + "\n"
    )
    result = validate(path)
    assert result.returncode == 2
    codes = [line.split(": ")[:2] for line in result.stdout.splitlines()]
    assert codes == [
        ["line 2", "invalid_json_line"],
        ["line 3", "duplicate_custom_id"],
        ["line 4", "url_mismatch"],
        ["line 5", "missing_model"],
    ]
    assert "5 lines, 5 requests" in result.stderr and "invalid: 4 problem(s)" in result.stderr


def test_the_endpoint_flag_checks_every_line_against_it(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_bytes(jsonl([chat_line("a", "x")]))
    result = validate(path, "--endpoint", "/v1/embeddings")
    assert result.returncode == 2 and result.stdout.startswith("line 1: url_mismatch: ")


def test_the_servers_limits_apply(tmp_path):
    path = tmp_path / "three.jsonl"
    path.write_bytes(jsonl(chat_line(str(i), "x") for i in range(3)))
    result = validate(path, BATCHGATE_MAX_LINES="2")
    assert result.returncode == 2 and "line 3: too_many_tasks: " in result.stdout


def test_an_empty_file_is_invalid(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    result = validate(path, "--endpoint", CHAT)
    assert result.returncode == 2 and result.stdout.startswith("line 1: empty_file: ")


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    assert validate(tmp_path / "missing.jsonl").returncode == 2
    path = tmp_path / "x.jsonl"
    path.write_bytes(jsonl([chat_line("a", "x")]))
    result = validate(path, "--endpoint", "/v1/nowhere")
    assert result.returncode == 2 and "unsupported endpoint '/v1/nowhere'" in one_error_line(result)


def test_the_plan_of_a_valid_file_goes_beside_its_summary(tmp_path):
    path = tmp_path / "grouped.jsonl"
    path.write_bytes(jsonl(grouped_lines(group=10, alone=2)))
    result = validate(path)
    assert result.returncode == 0 and result.stdout == ""
    plan = result.stderr.splitlines()[-1]
    assert plan.startswith("plan: 12 requests, ~") and "1 prefix group(s) of 3 key(s) hold 10 lines" in plan
    assert "approximate" not in plan


def test_json_output_holds_the_verdict_and_the_plan(tmp_path):
    path = tmp_path / "grouped.jsonl"
    path.write_bytes(jsonl(grouped_lines(group=10, alone=2)))
    result = validate(path, "--output", "json")
    assert result.returncode == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert (report["valid"], report["requests"], report["endpoint"], report["errors"]) == (True, 12, CHAT, [])
    plan = report["plan"]
    assert plan["object"] == "batch.plan" and plan["lines"] == 12
    assert (plan["prefix_keys"], plan["prefix_groups"], plan["lines_in_groups"]) == (3, 1, 10)
    # Nine of the ten lines could skip the system prompt: most of the file's input tokens.
    assert 0.5 < plan["shared_prefix_share"] < 1 and plan["shared_prefix_tokens"] < plan["estimated_input_tokens"]


def test_json_output_of_an_invalid_file_lists_its_problems_and_exits_2(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat_line("a", "x")) + "\n{not json\n")
    result = validate(path, "--output", "json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["error_count"] == 1
    assert [(e["line"], e["code"]) for e in report["errors"]] == [(2, "invalid_json_line")]
    assert report["plan"]["lines"] == 1  # the good lines' plan
