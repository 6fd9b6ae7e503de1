"""`"dry_run": true` on create: the input file checked as its batch would check it, and its plan answered
instead of a batch (through the real openai SDK, and raw HTTP on the MKA1 path)."""

from __future__ import annotations

import uuid

import openai
import pytest
from openai import OpenAI

from tests.contract.conftest import (
    MKA1,
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    request_line,
    upload_raw,
)
from tests.support.plan_lines import CHAT, grouped_lines

STACKS = ("local", "postgresql+s3")  # the file streams from the blob store: a folder, or S3


@pytest.fixture
def obo() -> str:
    return "plan-" + uuid.uuid4().hex[:12]


@pytest.fixture
def client(module_gateway, obo):
    with OpenAI(
        base_url=module_gateway.url + "/v1",
        api_key=module_gateway.key,
        max_retries=0,
        default_headers={"X-On-Behalf-Of": obo},
    ) as client:
        yield client


def batch_ids(gateway, obo: str, prefix: str = OPENAI) -> list[str]:
    reply = http(gateway, "GET", f"{prefix}/batches", obo=obo)
    assert reply.status == 200, reply.body
    return [batch["id"] for batch in reply.json["data"]]


def test_the_openai_sdk_gets_the_plan_and_no_batch_is_made(module_gateway, client, obo):
    file = client.files.create(file=("grouped.jsonl", jsonl(grouped_lines(group=10, alone=2))), purpose="batch")
    answer = client.batches.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h", extra_body={"dry_run": True}
    )
    plan = answer.to_dict()
    assert plan["object"] == "batch.plan" and plan["input_file_id"] == file.id and plan["endpoint"] == CHAT
    assert (plan["lines"], plan["prefix_keys"], plan["prefix_groups"], plan["lines_in_groups"]) == (12, 3, 1, 10)
    assert 0.5 < plan["shared_prefix_share"] < 1 and plan["approximate"] is False
    assert 0 < plan["shared_prefix_tokens"] < plan["estimated_input_tokens"]
    assert batch_ids(module_gateway, obo) == []
    # The same file, without dry_run, makes its batch as before.
    batch = client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    assert batch.object == "batch" and batch_ids(module_gateway, obo) == [batch.id]


def test_mka1_path_answers_the_plan_over_raw_http(module_gateway, obo):
    uploaded = upload_raw(module_gateway, jsonl(grouped_lines(group=4, alone=1)), prefix=MKA1, obo=obo)
    reply = create_batch_raw(module_gateway, uploaded.json["id"], prefix=MKA1, obo=obo, dry_run=True)
    assert reply.status == 200, reply.body
    assert reply.json["object"] == "batch.plan" and reply.json["lines"] == 5 and reply.json["prefix_groups"] == 1
    assert batch_ids(module_gateway, obo, MKA1) == []


def test_a_file_its_batch_would_fail_answers_400_naming_its_line_errors(module_gateway, obo):
    bad = jsonl([request_line("a", "x"), b"{not json", request_line("a", "again"), request_line("b", "y")])
    uploaded = upload_raw(module_gateway, bad, prefix=MKA1, obo=obo)
    reply = create_batch_raw(module_gateway, uploaded.json["id"], prefix=MKA1, obo=obo, dry_run=True)
    error = assert_error_reply(reply, 400)
    assert (error["code"], error["param"]) == ("invalid_input_file", "input_file_id")
    message = error["message"]
    assert "2 problem(s)" in message and "\n" not in message
    assert message.index("Line 2 is not valid JSON") < message.index("Line 3: custom_id 'a' was already used on line 1")
    assert batch_ids(module_gateway, obo, MKA1) == []


def test_the_message_lists_the_earliest_problems_and_counts_the_rest(module_gateway, obo):
    uploaded = upload_raw(module_gateway, jsonl(["{not json"] * 25), obo=obo)
    error = assert_error_reply(create_batch_raw(module_gateway, uploaded.json["id"], obo=obo, dry_run=True), 400)
    assert "25 problem(s)" in error["message"] and "Line 10 " in error["message"] and "Line 11 " not in error["message"]
    assert "and 15 more" in error["message"]


def test_a_file_for_another_endpoint_is_refused_line_by_line(client, obo):
    file = client.files.create(file=("chat.jsonl", jsonl([request_line("a", "x")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(
            input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h", extra_body={"dry_run": True}
        )
    assert (
        refused.value.code == "invalid_input_file"
        and "Line 1: 'url' is '/v1/chat/completions'" in refused.value.message
    )


@pytest.mark.parametrize("value", ["yes", 1, [], {}], ids=["string", "number", "list", "object"])
def test_a_dry_run_that_is_not_a_boolean_is_a_400_naming_it(module_gateway, obo, value):
    uploaded = upload_raw(module_gateway, jsonl([request_line("a", "x")]), obo=obo)
    reply = create_batch_raw(module_gateway, uploaded.json["id"], obo=obo, dry_run=value)
    assert reply.status == 400 and reply.json["error"]["param"] == "dry_run", reply.body
    assert batch_ids(module_gateway, obo) == []


def test_an_unknown_file_is_404_as_for_a_batch(client):
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint=CHAT, completion_window="24h", extra_body={"dry_run": True}
        )
