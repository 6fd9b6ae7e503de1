"""Repeats sent once: a batch that asks for it sends each repeatable body once and answers every line.

A real `batchgate serve` in front of a real mock upstream whose log shows what was sent; the lines
sleep a little ([sleep:S]) so repeats arrive while their first is still out, as well as after.
"""

from __future__ import annotations

import uuid

import openai
import pytest
from mka1 import SDK

from tests.contract.conftest import jsonl, parse_jsonl, request_line
from tests.contract.test_metrics import scrape, value
from tests.support.cli import batchgate, client_env
from tests.support.lifecycle import assert_partition, wait_status, wait_until
from tests.support.servers import upstream_config

STACKS = ("local",)
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def upstream(make_module_upstream):
    return make_module_upstream()


@pytest.fixture(scope="module")
def gw(make_module_gateway, upstream):
    return make_module_gateway(upstream_config(("mock", upstream.base_url, ["*"])))


@pytest.fixture
def api(gw):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.key, max_retries=0, timeout=30)
    yield client
    client.close()


def repeats(tag: str) -> list[dict]:
    """Three repeatable questions asked four times each, interleaved, then a sampled one asked twice."""
    lines = []
    for round_ in range(4):
        for q in range(3):
            text = f"{tag} question {q} [sleep:0.05]"
            line = request_line(f"r{round_}-q{q}", text)
            line["body"]["temperature"] = 0
            lines.append(line)
    for n in range(2):
        lines.append(request_line(f"sampled-{n}", f"{tag} sampled [sleep:0.05]"))
    return lines


def sent(upstream, tag: str) -> list[str]:
    return [request["text"] for request in upstream.requests() if tag in request["text"]]


def run(api, lines: list[dict], metadata: dict | None):
    file = api.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = api.batches.create(
        input_file_id=file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata=metadata,
        extra_body={"max_concurrency": 8},
    )
    batch = wait_status(api, batch.id)
    assert batch.status == "completed", batch
    return batch, parse_jsonl(api.files.content(batch.output_file_id).content)


def test_a_batch_that_asks_sends_each_repeatable_body_once_and_answers_every_line(api, gw, upstream):
    tag = uuid.uuid4().hex
    lines = repeats(tag)
    saved_before = value(scrape(gw.url), "batchgate_duplicates_saved_total", endpoint=CHAT)
    batch, output = run(api, lines, {"batchgate_deduplicate": "true"})

    texts = sent(upstream, tag)
    assert sorted(texts) == sorted(
        [f"{tag} question {q} [sleep:0.05]" for q in range(3)] + [f"{tag} sampled [sleep:0.05]"] * 2
    )
    assert [line["custom_id"] for line in output] == [line["custom_id"] for line in lines], "input order, each once"
    by_id = {line["custom_id"]: line for line in output}
    for q in range(3):
        answers = [by_id[f"r{r}-q{q}"]["response"]["body"] for r in range(4)]
        assert all(answer == answers[0] for answer in answers), "every repeat carries its first's answer"
    assert len({line["id"] for line in output}) == len(output), "each line keeps a request id of its own"

    assert batch.model_extra["duplicates_saved"] == 9
    assert (batch.request_counts.completed, batch.request_counts.failed) == (14, 0)
    sent_usage = sum(
        line["response"]["body"]["usage"]["prompt_tokens"]
        for line in output
        if line["custom_id"].startswith(("r0", "sampled"))
    )
    assert batch.usage.input_tokens == sent_usage, "only what was sent is spent"

    assert value(scrape(gw.url), "batchgate_duplicates_saved_total", endpoint=CHAT) - saved_before == 9
    table = batchgate("batches", "get", batch.id, "--output", "table", env=client_env(gw))
    assert table.returncode == 0, table.stderr
    assert "repeats saved" in table.stdout and "│ 9 " in table.stdout.replace("┃", "│")

    sdk = SDK(bearer_auth=gw.key, server_url=gw.url)
    assert sdk.llm.batches.get(batch_id=batch.id).id == batch.id


def test_without_the_metadata_key_every_line_is_sent(api, upstream):
    tag = uuid.uuid4().hex
    lines = repeats(tag)
    batch, output = run(api, lines, {"batchgate_deduplicate": "no"})
    assert len(sent(upstream, tag)) == len(lines)
    assert batch.model_extra["duplicates_saved"] == 0
    assert len(output) == len(lines)


def test_a_cancel_leaves_every_repeat_answered_or_cancelled_exactly_once(api, upstream):
    tag = uuid.uuid4().hex
    lines = []
    for n in range(40):
        line = request_line(f"line-{n}", f"{tag} q{n % 4} [sleep:{0.02 if n < 8 else 0.6}]")
        line["body"]["seed"] = 1
        lines.append(line)
    file = api.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = api.batches.create(
        input_file_id=file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"batchgate_deduplicate": "true"},
        extra_body={"max_concurrency": 4},
    )
    wait_until(lambda: api.batches.retrieve(batch.id).request_counts.completed >= 4, what="first answers")
    api.batches.cancel(batch.id)
    batch = wait_status(api, batch.id)
    assert batch.status == "cancelled"
    output = parse_jsonl(api.files.content(batch.output_file_id).content) if batch.output_file_id else []
    errors = parse_jsonl(api.files.content(batch.error_file_id).content) if batch.error_file_id else []
    assert_partition(output, errors, [line["custom_id"] for line in lines])
    answered = {line["response"]["body"]["choices"][0]["message"]["content"] for line in output}
    assert batch.model_extra["duplicates_saved"] == len(output) - len(answered), "one answer sent per body"
    assert len(sent(upstream, tag)) == len(set(sent(upstream, tag))), "no body was sent twice"
